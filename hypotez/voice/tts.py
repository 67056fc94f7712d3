"""Text to speech: edge-tts (Microsoft's online neural voices) with retries, and espeak-ng when it fails.

The edge-tts endpoint is unofficial: it answers 403s, empty turns and silence at times.  Each request gets
``retries + 1`` attempts, each bounded by ``timeout`` seconds, with exponential backoff and full jitter between
them.  When every attempt fails, espeak-ng (a local program) speaks instead and :attr:`Speech.fallback_reason`
tells the member why the voice sounds different.  Only edge-tts clips enter the cache: a fallback clip is
made again next time, so the service gets another chance as soon as it recovers.

Clip lengths are measured by decoding the audio with PyAV in a worker thread, never estimated.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import re
import shutil
import wave
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import aiohttp
import av
import av.error
import edge_tts
import edge_tts.exceptions

from hypotez.errors import InvalidInputError
from hypotez.voice.clip import AudioClip

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from hypotez.config import Settings

__all__ = [
    "CacheInfo",
    "Speaker",
    "Speech",
    "SpeechError",
    "Synthesize",
    "VoiceInfo",
    "edge_synthesize",
    "espeak_available",
    "load_shipped_voices",
]

_LOGGER = logging.getLogger(__name__)

#: Rate and pitch bounds: beyond them speech is no longer intelligible (and espeak-ng cannot follow).
RATE_RANGE = (-50, 100)
PITCH_RANGE = (-50, 50)

_RATE = re.compile(r"^\s*([+-]?)(\d{1,3})\s*%\s*$")
_PITCH = re.compile(r"^\s*([+-]?)(\d{1,3})\s*hz\s*$", re.IGNORECASE)

#: espeak-ng's defaults: 175 words per minute, pitch 50 on its 0-99 scale.
_ESPEAK_WPM = 175
_ESPEAK_WPM_RANGE = (80, 450)
_ESPEAK_PITCH = 50

#: Locales whose espeak-ng voice is not named after the language code.
_ESPEAK_LANGUAGE_ALIASES = {"zh": "cmn", "zh-hk": "yue", "zh-tw": "cmn", "nb": "nb", "no": "nb"}

#: What the service's failures look like: its own exceptions, the websocket's (403 handshakes included), time-outs.
_EDGE_FAILURES: tuple[type[BaseException], ...] = (
    edge_tts.exceptions.EdgeTTSException,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)


class SpeechError(InvalidInputError):
    """Speech cannot be made from this request: bad text, voice, rate or pitch, or no engine could speak."""


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """One edge-tts voice."""

    short_name: str
    locale: str
    gender: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Speech:
    """Spoken text.  ``fallback_reason`` is ``None`` when edge-tts spoke, else a sentence for the member."""

    clip: AudioClip
    fallback_reason: str | None = None


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int


class Synthesize(Protocol):
    """One edge-tts request: the mp3 bytes for ``text`` (empty when the service sent no audio)."""

    def __call__(self, text: str, voice: str, rate: str, pitch: str, /) -> Awaitable[bytes]: ...


async def edge_synthesize(
    text: str, voice: str, rate: str, pitch: str, /, *, connector: aiohttp.BaseConnector | None = None
) -> bytes:
    """Ask Microsoft's speech service for ``text`` and gather the mp3 it streams."""
    communicate = edge_tts.Communicate(text, voice, rate=rate, pitch=pitch, connector=connector)
    chunks: list[bytes] = []
    async for chunk in communicate.stream():
        if chunk["type"] == "audio" and "data" in chunk:
            chunks.append(chunk["data"])
    return b"".join(chunks)


def espeak_available(espeak: str = "espeak-ng") -> bool:
    """Whether the espeak-ng program can be found."""
    return shutil.which(espeak) is not None


def _voice_info(entry: Mapping[str, Any]) -> VoiceInfo | None:
    short_name, locale = entry.get("ShortName"), entry.get("Locale")
    if not isinstance(short_name, str) or not isinstance(locale, str) or not short_name or not locale:
        return None
    gender, friendly = entry.get("Gender"), entry.get("FriendlyName")
    return VoiceInfo(
        short_name=short_name,
        locale=locale,
        gender=gender if isinstance(gender, str) else "",
        display_name=friendly if isinstance(friendly, str) else short_name,
    )


def _voice_infos(entries: Iterable[Mapping[str, Any]]) -> list[VoiceInfo]:
    return [info for entry in entries if (info := _voice_info(entry)) is not None]


def load_shipped_voices() -> list[VoiceInfo]:
    """The voice list shipped with hypotez (``voices.json``, in the format of ``edge_tts.list_voices``)."""
    text = resources.files("hypotez.voice").joinpath("voices.json").read_text(encoding="utf-8")
    return _voice_infos(json.loads(text))


def _parse_rate(rate: str) -> int:
    match = _RATE.match(rate)
    low, high = RATE_RANGE
    if match is None:
        raise SpeechError(f"The speaking rate must look like +10% or -20% (from {low}% to +{high}%), not {rate!r}.")
    value = int(match[2]) * (-1 if match[1] == "-" else 1)
    if not low <= value <= high:
        raise SpeechError(f"The speaking rate must be from {low}% to +{high}%; {rate.strip()} is out of range.")
    return value


def _parse_pitch(pitch: str) -> int:
    match = _PITCH.match(pitch)
    low, high = PITCH_RANGE
    if match is None:
        raise SpeechError(f"The pitch must look like +5Hz or -10Hz (from {low}Hz to +{high}Hz), not {pitch!r}.")
    value = int(match[2]) * (-1 if match[1] == "-" else 1)
    if not low <= value <= high:
        raise SpeechError(f"The pitch must be from {low}Hz to +{high}Hz; {pitch.strip()} is out of range.")
    return value


def _measure(data: bytes) -> float:
    """The length in seconds of encoded audio, by decoding every frame (0 when there is none)."""
    samples = 0
    rate = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            return 0.0
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate or rate
    return samples / rate if rate else 0.0


def _tidy_wav(data: bytes) -> bytes:
    """espeak-ng cannot seek stdout, so its WAV header claims an unknown length: write a correct one."""
    with wave.open(io.BytesIO(data), "rb") as source:
        params = source.getparams()
        frames = source.readframes(params.nframes)
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(params.nchannels)
        target.setsampwidth(params.sampwidth)
        target.setframerate(params.framerate)
        target.writeframes(frames)
    return out.getvalue()


class _EdgeUnavailableError(Exception):
    """Every edge-tts attempt failed; ``reason`` is what the member is told."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Speaker:
    """Turns text into speech: edge-tts first, espeak-ng when the service fails; repeated phrases from a cache."""

    def __init__(
        self,
        *,
        voice: str,
        rate: str,
        pitch: str,
        retries: int,
        timeout: float,
        cache_size: int,
        fallback_voice: str,
        max_chars: int,
        synthesize: Synthesize = edge_synthesize,
        espeak: str = "espeak-ng",
        voices: Sequence[VoiceInfo] | None = None,
        list_voices: Callable[[], Awaitable[Sequence[Mapping[str, Any]]]] = edge_tts.list_voices,
        backoff_s: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.voice = voice
        self.rate = rate
        self.pitch = pitch
        self.retries = max(0, retries)
        self.timeout = timeout
        self.cache_size = max(0, cache_size)
        self.fallback_voice = fallback_voice
        self.max_chars = max_chars
        self.espeak = espeak
        self.backoff_s = backoff_s
        self._synthesize = synthesize
        self._list_voices = list_voices
        self._sleep = sleep
        self._voices: list[VoiceInfo] = list(voices) if voices is not None else load_shipped_voices()
        self._by_name = {info.short_name.casefold(): info for info in self._voices}
        self._cache: OrderedDict[tuple[str, str, str, str], Speech] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._espeak_languages: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Speaker:
        return cls(
            voice=settings.tts_voice,
            rate=settings.tts_rate,
            pitch=settings.tts_pitch,
            retries=settings.tts_retries,
            timeout=settings.tts_timeout,
            cache_size=settings.tts_cache_size,
            fallback_voice=settings.tts_fallback_voice,
            max_chars=settings.tts_max_chars,
        )

    # Voices

    def voices(self) -> list[VoiceInfo]:
        """The voices edge-tts offers: the shipped list, or the one :meth:`refresh_voices` fetched."""
        return list(self._voices)

    def find_voices(self, query: str, *, limit: int = 25) -> list[VoiceInfo]:
        """Voices whose short name, locale or display name contain ``query`` (any case), best matches first."""
        needle = query.strip().casefold()
        if not needle:
            return self._voices[:limit]
        ranked: list[tuple[int, int, VoiceInfo]] = []
        for index, info in enumerate(self._voices):
            name, locale, display = info.short_name.casefold(), info.locale.casefold(), info.display_name.casefold()
            if name.startswith(needle) or locale.startswith(needle):
                ranked.append((0, index, info))
            elif needle in name or needle in locale or needle in display:
                ranked.append((1, index, info))
        ranked.sort(key=lambda item: item[:2])
        return [info for _, _, info in ranked[:limit]]

    async def refresh_voices(self) -> bool:
        """Fetch the service's current voice list; on any failure keep the one in use and return ``False``."""
        try:
            async with asyncio.timeout(self.timeout):
                entries = await self._list_voices()
            fresh = _voice_infos(entries)
        except (*_EDGE_FAILURES, ValueError, TypeError, AttributeError) as exc:
            _LOGGER.warning("The edge-tts voice list could not be fetched (%s).", exc.__class__.__name__)
            return False
        if not fresh:
            _LOGGER.warning("The edge-tts voice list came back empty; the current one is kept.")
            return False
        self._voices = fresh
        self._by_name = {info.short_name.casefold(): info for info in fresh}
        return True

    # Cache

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, len(self._cache))

    def _remember(self, key: tuple[str, str, str, str], speech: Speech) -> None:
        if self.cache_size == 0:
            return
        self._cache[key] = speech
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # Speaking

    def _resolve_voice(self, voice: str) -> VoiceInfo:
        info = self._by_name.get(voice.strip().casefold())
        if info is None:
            suggestions = ", ".join(v.short_name for v in self.find_voices(voice.split("-", maxsplit=1)[0], limit=3))
            hint = f" Try {suggestions}." if suggestions else ""
            raise SpeechError(f"There is no voice called {voice.strip()!r}.{hint}")
        return info

    def _check_text(self, text: str) -> str:
        cleaned = text.strip()
        if not cleaned:
            raise SpeechError("There is nothing to say: the text is empty.")
        if len(cleaned) > self.max_chars:
            raise SpeechError(
                f"The text is too long to speak: {len(cleaned)} characters, at most {self.max_chars} are allowed."
            )
        return cleaned

    async def speak(
        self, text: str, *, voice: str | None = None, rate: str | None = None, pitch: str | None = None
    ) -> Speech:
        """Speak ``text`` with ``voice``/``rate``/``pitch`` (the configured ones by default).

        Raises :class:`SpeechError` for a request that cannot be spoken, or when neither engine could speak.
        """
        cleaned = self._check_text(text)
        info = self._resolve_voice(voice or self.voice)
        rate_value = _parse_rate(rate or self.rate)
        pitch_value = _parse_pitch(pitch or self.pitch)
        rate_text, pitch_text = f"{rate_value:+d}%", f"{pitch_value:+d}Hz"

        key = (cleaned, info.short_name, rate_text, pitch_text)
        cached = self._cache.get(key)
        if cached is not None:
            self._hits += 1
            self._cache.move_to_end(key)
            return cached
        self._misses += 1

        try:
            clip = await self._speak_edge(cleaned, info.short_name, rate_text, pitch_text)
        except _EdgeUnavailableError as failure:
            clip = await self._speak_espeak(cleaned, info.locale, rate_value, pitch_value, failure.reason)
            return Speech(clip, f"{failure.reason}; a local voice spoke instead")
        speech = Speech(clip, None)
        self._remember(key, speech)
        return speech

    async def _speak_edge(self, text: str, voice: str, rate: str, pitch: str) -> AudioClip:
        reason = "the speech service could not be reached"
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                # Full jitter: concurrent speakers do not retry in step.
                await self._sleep(random.uniform(0, self.backoff_s * 2 ** (attempt - 1)))  # noqa: S311
            try:
                async with asyncio.timeout(self.timeout):
                    data = await self._synthesize(text, voice, rate, pitch)
            except TimeoutError:
                reason = "the speech service did not answer in time"
            except edge_tts.exceptions.NoAudioReceived:
                reason = "the speech service sent no audio"
            except aiohttp.ClientResponseError as exc:
                reason = (
                    "the speech service refused the request"
                    if exc.status in {401, 403, 429}
                    else "the speech service failed"
                )
            except _EDGE_FAILURES:
                reason = "the speech service could not be reached"
            except Exception:
                # edge-tts follows an unofficial protocol and changes often: whatever it raises, a local voice
                # still speaks, and the log keeps the details.
                _LOGGER.warning("edge-tts raised an unexpected error", exc_info=True)
                reason = "the speech service failed"
            else:
                if not data:
                    reason = "the speech service sent no audio"
                else:
                    try:
                        duration = await asyncio.to_thread(_measure, data)
                    except (av.error.FFmpegError, ValueError):
                        duration = 0.0
                    if duration > 0:
                        return AudioClip(data, "mp3", duration, "edge-tts")
                    reason = "the speech service sent audio that could not be played"
            _LOGGER.info("edge-tts attempt %d/%d failed: %s", attempt + 1, attempts, reason)
        raise _EdgeUnavailableError(reason)

    async def _espeak_voices(self) -> frozenset[str]:
        """The language codes espeak-ng has voices for (asked once)."""
        if self._espeak_languages is None:
            languages: set[str] = set()
            try:
                process = await asyncio.create_subprocess_exec(
                    self.espeak, "--voices", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
                )
                async with asyncio.timeout(self.timeout):
                    out, _ = await process.communicate()
            except (OSError, TimeoutError):
                return frozenset()
            for line in out.decode("utf-8", "replace").splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 2:
                    languages.add(fields[1].casefold())
            self._espeak_languages = frozenset(languages)
        return self._espeak_languages

    async def _espeak_voice_for(self, locale: str) -> str:
        available = await self._espeak_voices()
        full = locale.casefold()
        language = full.split("-")[0]
        for candidate in (full, _ESPEAK_LANGUAGE_ALIASES.get(full), language, _ESPEAK_LANGUAGE_ALIASES.get(language)):
            if candidate and candidate in available:
                return candidate
        return self.fallback_voice

    async def _speak_espeak(self, text: str, locale: str, rate: int, pitch: int, edge_reason: str) -> AudioClip:
        both_failed = SpeechError(
            f"Speech could not be made: {edge_reason}, and the local voice could not speak either. Try again later."
        )
        voice = await self._espeak_voice_for(locale)
        low, high = _ESPEAK_WPM_RANGE
        wpm = min(high, max(low, round(_ESPEAK_WPM * (1 + rate / 100))))
        espeak_pitch = min(99, max(0, _ESPEAK_PITCH + pitch))
        # The text goes on stdin (``--stdin``), so nothing in it can be read as an option.
        args = ["--stdout", "--stdin", "-b", "1", "-v", voice, "-s", str(wpm), "-p", str(espeak_pitch)]
        try:
            process = await asyncio.create_subprocess_exec(
                self.espeak,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            _LOGGER.error("espeak-ng could not be started (%s).", exc.__class__.__name__)
            raise both_failed from exc
        try:
            async with asyncio.timeout(max(self.timeout, 30.0)):
                out, err = await process.communicate(text.encode("utf-8"))
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            _LOGGER.error("espeak-ng did not finish in time.")
            raise both_failed from exc
        if process.returncode != 0 or not out:
            _LOGGER.error("espeak-ng failed (exit %s): %s", process.returncode, err.decode("utf-8", "replace")[:500])
            raise both_failed
        try:
            data = await asyncio.to_thread(_tidy_wav, out)
            duration = await asyncio.to_thread(_measure, data)
        except (wave.Error, EOFError, av.error.FFmpegError, ValueError) as exc:
            _LOGGER.error("espeak-ng wrote audio that could not be read (%s).", exc.__class__.__name__)
            raise both_failed from exc
        if duration <= 0:
            raise both_failed
        return AudioClip(data, "wav", duration, "espeak-ng")
