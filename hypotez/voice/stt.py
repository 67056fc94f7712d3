"""Speech to text with faster-whisper: one model per process, run in worker threads with a bounded queue.

Admission is counted, not awaited: at most ``workers`` recordings are transcribed at once and at most ``queue``
wait for a worker; one more is refused at once with :class:`TranscriberBusyError`, so memory never grows with
the number of requests.  The pool and the counters are thread based, so one :class:`Transcriber` serves any
event loop (the bot's, the CLI's, each test's).

Recordings at least ``batched_min_s`` long go through :class:`faster_whisper.BatchedInferencePipeline`.
Measured on a 2-core CPU shared with other work (load average about 5), tiny.en, int8, beam 1, a 166 s
espeak-ng recording of sentences and pauses, two runs each after a warm-up: sequential 31.6 s and 42.1 s,
batched with batch_size 8 6.2 s and 8.2 s, with batch_size 4 6.7 s and 8.5 s (380 words spoken; 392
transcribed sequentially, 401 batched).  Batched is several times faster on CPU too, so long recordings use
it; under 30 s (one whisper window) there is nothing to batch, hence the 60 s default threshold.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypotez.errors import ConfigError, HypotezError, InvalidInputError
from hypotez.voice import audio as audio_mod
from hypotez.voice.audio import SAMPLE_RATE, SilentAudioError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import numpy.typing as npt

    from hypotez.config import Settings

__all__ = [
    "LANGUAGES",
    "MAX_PROMPT_CHARS",
    "Progress",
    "Segment",
    "Transcriber",
    "TranscriberBusyError",
    "TranscriberStoppedError",
    "Transcription",
]

_LOGGER = logging.getLogger(__name__)

#: ``hotwords`` and ``initial_prompt`` are cut to this many characters: whisper keeps at most 223 prompt
#: tokens, and a longer prompt only costs decoding time.
MAX_PROMPT_CHARS = 600

#: Before any recording was measured: seconds of work per second of audio (small model, CPU, int8).
_DEFAULT_REAL_TIME_FACTOR = 0.5
#: Before any recording was measured: the length assumed for a recording not probed yet.
_DEFAULT_DURATION_S = 30.0

#: Every language whisper knows: code → English name (the table of openai/whisper's tokenizer).
LANGUAGES: dict[str, str] = {
    "en": "English", "zh": "Chinese", "de": "German", "es": "Spanish", "ru": "Russian", "ko": "Korean",
    "fr": "French", "ja": "Japanese", "pt": "Portuguese", "tr": "Turkish", "pl": "Polish", "ca": "Catalan",
    "nl": "Dutch", "ar": "Arabic", "sv": "Swedish", "it": "Italian", "id": "Indonesian", "hi": "Hindi",
    "fi": "Finnish", "vi": "Vietnamese", "he": "Hebrew", "uk": "Ukrainian", "el": "Greek", "ms": "Malay",
    "cs": "Czech", "ro": "Romanian", "da": "Danish", "hu": "Hungarian", "ta": "Tamil", "no": "Norwegian",
    "th": "Thai", "ur": "Urdu", "hr": "Croatian", "bg": "Bulgarian", "lt": "Lithuanian", "la": "Latin",
    "mi": "Maori", "ml": "Malayalam", "cy": "Welsh", "sk": "Slovak", "te": "Telugu", "fa": "Persian",
    "lv": "Latvian", "bn": "Bengali", "sr": "Serbian", "az": "Azerbaijani", "sl": "Slovenian", "kn": "Kannada",
    "et": "Estonian", "mk": "Macedonian", "br": "Breton", "eu": "Basque", "is": "Icelandic", "hy": "Armenian",
    "ne": "Nepali", "mn": "Mongolian", "bs": "Bosnian", "kk": "Kazakh", "sq": "Albanian", "sw": "Swahili",
    "gl": "Galician", "mr": "Marathi", "pa": "Punjabi", "si": "Sinhala", "km": "Khmer", "sn": "Shona",
    "yo": "Yoruba", "so": "Somali", "af": "Afrikaans", "oc": "Occitan", "ka": "Georgian", "be": "Belarusian",
    "tg": "Tajik", "sd": "Sindhi", "gu": "Gujarati", "am": "Amharic", "yi": "Yiddish", "lo": "Lao",
    "uz": "Uzbek", "fo": "Faroese", "ht": "Haitian Creole", "ps": "Pashto", "tk": "Turkmen", "nn": "Nynorsk",
    "mt": "Maltese", "sa": "Sanskrit", "lb": "Luxembourgish", "my": "Myanmar", "bo": "Tibetan", "tl": "Tagalog",
    "mg": "Malagasy", "as": "Assamese", "tt": "Tatar", "haw": "Hawaiian", "ln": "Lingala", "ha": "Hausa",
    "ba": "Bashkir", "jw": "Javanese", "su": "Sundanese", "yue": "Cantonese",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of recognised speech, in seconds from the start of the recording."""

    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcription:
    """The text of one recording and how it was made."""

    text: str
    language: str
    language_probability: float
    duration_s: float
    segments: tuple[Segment, ...]
    model: str
    elapsed_s: float
    batched: bool


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a transcription is: ``done_s`` of ``total_s`` seconds of audio, after ``elapsed_s`` seconds."""

    done_s: float
    total_s: float
    elapsed_s: float

    @property
    def share(self) -> float:
        """Fraction done, 0..1."""
        if self.total_s <= 0:
            return 1.0
        return min(1.0, max(0.0, self.done_s / self.total_s))

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the speed so far; ``None`` before anything is done."""
        if self.done_s <= 0 or self.elapsed_s <= 0:
            return None
        return max(0.0, (self.total_s - self.done_s) * self.elapsed_s / self.done_s)


class TranscriberBusyError(InvalidInputError):
    """Every worker is busy and the queue is full."""

    def __init__(self, waiting: int, retry_after_s: float) -> None:
        super().__init__(
            f"Transcription is busy: {waiting} {'recording is' if waiting == 1 else 'recordings are'} waiting. "
            f"Try again in about {max(1, math.ceil(retry_after_s))} s."
        )
        self.waiting = waiting
        self.retry_after_s = retry_after_s


class TranscriberStoppedError(HypotezError):
    """The bot is shutting down: a recording not finished within the grace period is answered, never dropped."""

    def __init__(self) -> None:
        super().__init__("The bot restarted before finishing your transcription; send it again.")


def _bounded(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    if len(text) > MAX_PROMPT_CHARS:
        cut = text[:MAX_PROMPT_CHARS]
        text = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return text or None


@dataclass(frozen=True, slots=True)
class _Request:
    audio: bytes | Path
    language: str | None
    hotwords: str | None
    initial_prompt: str | None
    report: Callable[[Progress], None] | None


#: English-only whisper models have this many tokens; multilingual ones have more (as CTranslate2 decides).
_ENGLISH_VOCABULARY = 51_864


def _multilingual_by_name(model: str) -> bool:
    """Whether a model not loaded yet knows other languages than English: by its size name, or for a local
    CTranslate2 directory by the size of its vocabulary (a directory's name says nothing)."""
    path = Path(model)
    vocabulary = path / "vocabulary.txt"
    if vocabulary.is_file():
        with vocabulary.open(encoding="utf-8") as lines:
            return sum(1 for _ in lines) > _ENGLISH_VOCABULARY
    return not path.name.endswith(".en")


class _Job:
    """One admitted recording: what the estimate needs to know about it."""

    __slots__ = ("cancelled", "done_s", "duration_s", "running")

    def __init__(self) -> None:
        self.duration_s: float | None = None
        self.done_s = 0.0
        self.running = False
        self.cancelled = threading.Event()


class Transcriber:
    """Transcribes audio with one shared faster-whisper model, ``workers`` recordings at a time.

    ``model`` is a size name (``tiny``, ``small``, ``large-v3``...) fetched on first use, or the path of a
    local CTranslate2 model directory (needed where the model hub cannot be reached).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        compute_type: str = "int8",
        workers: int = 1,
        queue: int = 8,
        batched_min_s: float = 60.0,
        batch_size: int = 8,
        beam_size: int = 1,
        max_duration_s: float = 600.0,
    ) -> None:
        self.model_name = model
        self.device = device
        self.compute_type = compute_type
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self.batched_min_s = batched_min_s
        self.batch_size = max(1, batch_size)
        self.beam_size = max(1, beam_size)
        self.max_duration_s = max_duration_s
        self._model: Any = None
        self._pipeline: Any = None
        self._multilingual_guess: bool | None = None
        self._load_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs: list[_Job] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="whisper")
        # (audio seconds, work seconds) of recent recordings, for the real-time factor.
        self._callbacks: set[asyncio.Future[Any]] = set()  # awaitable progress callbacks still running
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=20)
        self._stopping = False
        self._waiting: set[asyncio.Task[Any]] = set()  # the tasks awaiting a transcription (for shutdown)

    @classmethod
    def from_settings(cls, settings: Settings) -> Transcriber:
        return cls(
            settings.whisper_model,
            device=settings.whisper_device,
            compute_type=settings.whisper_compute_type,
            workers=settings.whisper_workers,
            queue=settings.whisper_queue,
            batched_min_s=settings.whisper_batched_min_s,
            batch_size=settings.whisper_batch_size,
            beam_size=settings.whisper_beam_size,
            max_duration_s=settings.voice_max_duration_s,
        )

    # -- the model -------------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load_sync(self) -> Any:
        with self._load_lock:
            if self._model is None:
                from faster_whisper import WhisperModel  # pyright: ignore[reportMissingTypeStubs]

                try:
                    self._model = WhisperModel(
                        self.model_name,
                        device=self.device,
                        compute_type=self.compute_type,
                        num_workers=self.workers,
                    )
                except Exception as exc:
                    raise ConfigError(
                        f"The whisper model {self.model_name!r} could not be loaded ({exc.__class__.__name__}). "
                        "Set HYPOTEZ_WHISPER_MODEL to a model size or to a local model directory.",
                        setting="HYPOTEZ_WHISPER_MODEL",
                    ) from exc
                _LOGGER.info("whisper model %s loaded on %s", self.model_name, self.device)
            return self._model

    def _batched_pipeline(self) -> Any:
        model = self._load_sync()
        with self._load_lock:
            if self._pipeline is None:
                from faster_whisper import BatchedInferencePipeline  # pyright: ignore[reportMissingTypeStubs]

                self._pipeline = BatchedInferencePipeline(model=model)
            return self._pipeline

    async def load(self) -> None:
        """Load the model (in a thread) if it is not loaded yet."""
        await asyncio.to_thread(self._load_sync)

    def close(self) -> None:
        """Stop the worker threads once the running recordings are done."""
        self._stopping = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self, grace_s: float = 20.0) -> None:
        """Shut down without dropping anyone: refuse new recordings, let those admitted finish for at most
        ``grace_s`` seconds, then stop the rest; their callers get :class:`TranscriberStoppedError` (a "send it
        again" for the member), and are given a moment to say so before the worker threads stop."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        waiting = {task for task in self._waiting if not task.done()}
        if waiting:
            await asyncio.wait(waiting, timeout=grace_s)
        with self._jobs_lock:
            for job in self._jobs:
                job.cancelled.set()  # a running one stops at its next segment, a queued one never starts
        still = {task for task in self._waiting if not task.done()}
        if still:
            await asyncio.wait(still, timeout=max(5.0, deadline - loop.time()))
        self.close()

    def _multilingual(self) -> bool:
        if self._model is not None:
            return bool(self._model.model.is_multilingual)
        if self._multilingual_guess is None:
            self._multilingual_guess = _multilingual_by_name(self.model_name)
        return self._multilingual_guess

    def languages(self) -> list[tuple[str, str]]:
        """``(code, English name)`` of every language the model knows, for autocomplete."""
        if not self._multilingual():
            return [("en", LANGUAGES["en"])]
        return sorted(LANGUAGES.items(), key=lambda item: item[1])

    # -- admission and estimates -----------------------------------------------------------------------------

    def _real_time_factor(self) -> float:
        audio_s = sum(a for a, _ in self._recent)
        work_s = sum(w for _, w in self._recent)
        if audio_s <= 0:
            return _DEFAULT_REAL_TIME_FACTOR
        return work_s / audio_s

    def _typical_duration(self) -> float:
        if not self._recent:
            return _DEFAULT_DURATION_S
        return sum(a for a, _ in self._recent) / len(self._recent)

    def _wait_locked(self) -> float:
        remaining = sum(
            max(0.0, (job.duration_s if job.duration_s is not None else self._typical_duration()) - job.done_s)
            for job in self._jobs
        )
        return remaining * self._real_time_factor() / self.workers

    @property
    def admitted(self) -> int:
        """Recordings admitted and not finished: running and queued."""
        with self._jobs_lock:
            return len(self._jobs)

    def estimated_wait_s(self) -> float:
        """Seconds until a recording sent now would start, from the measured speed of recent recordings."""
        with self._jobs_lock:
            if len(self._jobs) < self.workers:
                return 0.0
            return self._wait_locked()

    def _admit(self) -> _Job:
        with self._jobs_lock:
            if len(self._jobs) >= self.workers + self.queue:
                waiting = len(self._jobs) - sum(job.running for job in self._jobs)
                raise TranscriberBusyError(waiting, self._wait_locked())
            job = _Job()
            self._jobs.append(job)
            return job

    def _release(self, job: _Job) -> None:
        with self._jobs_lock:
            if job in self._jobs:
                self._jobs.remove(job)

    # -- transcription ---------------------------------------------------------------------------------------

    async def transcribe(
        self,
        audio: bytes | Path,
        *,
        language: str | None = None,
        hotwords: str | None = None,
        initial_prompt: str | None = None,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> Transcription:
        """Transcribe ``audio`` (bytes or a file); ``language`` ``None`` detects it.

        ``on_progress`` is called on this event loop's thread as segments arrive.  Raises
        :class:`TranscriberBusyError` at once when the queue is full, and the :mod:`hypotez.voice.audio` errors
        for audio that is undecodable, too long or silent.
        """
        if self._stopping:
            raise TranscriberStoppedError
        job = self._admit()
        loop = asyncio.get_running_loop()
        report: Callable[[Progress], None] | None = None
        if on_progress is not None:
            callback = on_progress

            def _call(progress: Progress) -> None:
                result = callback(progress)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._callbacks.add(task)
                    task.add_done_callback(self._callbacks.discard)

            def _report(progress: Progress) -> None:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_call, progress)

            report = _report
        try:
            future = loop.run_in_executor(
                self._pool,
                self._run,
                job,
                _Request(audio, language, _bounded(hotwords), _bounded(initial_prompt), report),
            )
        except BaseException:
            self._release(job)
            raise
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        try:
            return await future
        except asyncio.CancelledError:
            # A waiting recording is dropped from the queue (its pool task is cancelled with this future);
            # a running one stops at its next segment and frees its place then.
            with self._jobs_lock:
                job.cancelled.set()
                started = job.running
            if not started:
                self._release(job)
            if self._stopping and (task is None or not task.cancelling()):
                # Stopped by the shutdown, not by the caller: the member hears it instead of nothing.
                raise TranscriberStoppedError from None
            raise
        finally:
            if task is not None:
                self._waiting.discard(task)

    def _run(self, job: _Job, request: _Request) -> Transcription:
        try:
            with self._jobs_lock:
                if job.cancelled.is_set():
                    raise concurrent.futures.CancelledError
                job.running = True
            return self._transcribe_sync(job, request)
        finally:
            self._release(job)

    def _transcribe_sync(self, job: _Job, request: _Request) -> Transcription:
        started = time.perf_counter()
        report = request.report
        audio = request.audio
        data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
        # The limit is checked on the metadata first, so a too-long file is refused before it is decoded.
        job.duration_s = audio_mod.probe_duration(data)
        if job.duration_s > self.max_duration_s + 0.5:
            raise audio_mod.AudioTooLongError(job.duration_s, self.max_duration_s)
        samples: npt.NDArray[np.float32] = audio_mod.decode(data, max_duration_s=self.max_duration_s)
        duration = samples.size / SAMPLE_RATE
        job.duration_s = duration
        batched = 0 < self.batched_min_s <= duration
        options: dict[str, Any] = {
            "language": request.language,
            "beam_size": self.beam_size,
            "vad_filter": True,
            "condition_on_previous_text": False,
            "hotwords": request.hotwords,
            "initial_prompt": request.initial_prompt,
        }
        if batched:
            segments_iter, info = self._batched_pipeline().transcribe(samples, batch_size=self.batch_size, **options)
        else:
            segments_iter, info = self._load_sync().transcribe(samples, **options)
        segments: list[Segment] = []
        for raw in segments_iter:
            if job.cancelled.is_set():
                raise concurrent.futures.CancelledError
            text = str(raw.text).strip()
            if text:
                segments.append(Segment(start=float(raw.start), end=float(raw.end), text=text))
            job.done_s = min(duration, float(raw.end))
            if report is not None:
                report(Progress(job.done_s, duration, time.perf_counter() - started))
        elapsed = time.perf_counter() - started
        self._recent.append((duration, elapsed))
        text = " ".join(segment.text for segment in segments).strip()
        if not text:
            raise SilentAudioError()
        if report is not None:
            report(Progress(duration, duration, elapsed))
        return Transcription(
            text=text,
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration_s=duration,
            segments=tuple(segments),
            model=self.model_name,
            elapsed_s=elapsed,
            batched=batched,
        )
