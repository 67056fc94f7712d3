"""Recognising, measuring and decoding audio with PyAV, on the committed espeak-ng fixtures."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from hypotez.errors import InvalidInputError
from hypotez.voice import audio
from hypotez.voice.audio import AudioTooLongError, UndecodableAudioError
from tests.fixtures.audio import CORRUPT, SILENT_OGG, VOICE_MP3, VOICE_OGG, VOICE_WAV
from tests.fixtures.audio.make_fixtures import encode, silence, speak

if TYPE_CHECKING:
    from pathlib import Path

VOICES = [VOICE_OGG, VOICE_MP3, VOICE_WAV]


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("voice-message.ogg", "audio/ogg", True),
        ("blob", "audio/ogg; codecs=opus", True),
        ("clip.MP4", None, True),
        ("call.webm", "video/webm", True),
        ("note.m4a", "application/octet-stream", True),
        ("notes.txt", "text/plain", False),
        ("picture.png", "image/png", False),
        ("README", None, False),
    ],
)
def test_is_audio(filename: str, content_type: str | None, expected: bool) -> None:
    assert audio.is_audio(filename, content_type) is expected


def test_extensions_cover_what_discord_members_send() -> None:
    assert {"mp3", "wav", "m4a", "webm", "ogg", "oga", "opus", "mp4", "mov", "flac"} <= audio.AUDIO_EXTENSIONS


@pytest.mark.parametrize("path", VOICES, ids=lambda p: p.suffix)
def test_every_format_has_the_same_length(path: Path) -> None:
    reference = audio.probe_duration(VOICE_WAV.read_bytes())
    assert 3.0 < reference < 5.0
    # Opus and MP3 encoders add a few ms of priming; the spoken length is the same.
    assert audio.probe_duration(path.read_bytes()) == pytest.approx(reference, abs=0.1)


@pytest.mark.parametrize("path", VOICES, ids=lambda p: p.suffix)
def test_decode_gives_float32_mono_16k(path: Path) -> None:
    data = path.read_bytes()
    samples = audio.decode(data)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert samples.size / audio.SAMPLE_RATE == pytest.approx(audio.probe_duration(data), abs=0.1)
    assert 0.05 < float(np.abs(samples).max()) <= 1.0  # speech, scaled to [-1, 1]


def test_silence_decodes_to_silence() -> None:
    samples = audio.decode(SILENT_OGG.read_bytes())
    assert samples.size / audio.SAMPLE_RATE == pytest.approx(3.0, abs=0.1)
    assert float(np.abs(samples).max()) < 1e-3


def test_a_spoken_signal_survives_decoding_at_its_place() -> None:
    # One second of silence, then speech: the decoded samples must be quiet first and loud after.
    samples = np.concatenate([silence(1.0), speak("one two three")])
    decoded = audio.decode(encode(samples, "flac"))
    rate = audio.SAMPLE_RATE
    assert float(np.abs(decoded[: int(0.8 * rate)]).max()) < 1e-3
    assert float(np.abs(decoded[int(1.1 * rate) :]).max()) > 0.05


@pytest.mark.parametrize("data", [CORRUPT.read_bytes(), b"", b"not audio at all " * 200], ids=["ogg", "empty", "text"])
def test_undecodable_bytes_are_a_clear_error(data: bytes) -> None:
    with pytest.raises(UndecodableAudioError, match="could not be decoded as audio") as caught:
        audio.decode(data)
    assert isinstance(caught.value, InvalidInputError)
    with pytest.raises(UndecodableAudioError):
        audio.probe_duration(data)


def test_too_long_is_refused_with_both_durations() -> None:
    data = encode(np.concatenate([speak("a long recording"), silence(70.0)]), "ogg")
    with pytest.raises(AudioTooLongError) as caught:
        audio.decode(data, max_duration_s=60.0)
    error = caught.value
    assert error.limit_s == 60.0
    assert error.duration_s == pytest.approx(audio.probe_duration(data), abs=0.01)
    assert error.duration_s > 70
    assert "1 min" in str(error)
    assert f"{error.duration_s // 60:.0f} min" in str(error)
    assert "the limit is 1 min." in str(error)


def test_a_recording_at_the_limit_is_decoded() -> None:
    data = VOICE_OGG.read_bytes()
    limit = audio.probe_duration(data)
    assert audio.decode(data, max_duration_s=limit).size > 0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0 s"), (42.4, "43 s"), (60, "1 min"), (75, "1 min 15 s"), (600, "10 min")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert audio.format_duration(seconds) == text
