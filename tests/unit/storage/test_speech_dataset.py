"""Corrected transcripts exported as a speech dataset, loaded back with Hugging Face ``datasets``' audiofolder."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
import zipfile
from pathlib import Path

import pytest

from hypotez.errors import InvalidInputError
from hypotez.storage.files.speech import METADATA, SpeechSample, write_speech_dataset

pytestmark = pytest.mark.timeout(600)

_SENTENCES = {
    101: ("Please call Threnvik tomorrow.", "en"),
    102: ("We flew to Marzipella last week.", "en"),
    103: ("Привет, это Ксюша.", "ru"),
}


def _speak(path: Path, text: str, voice: str) -> float:
    """Write ``text`` spoken by espeak-ng to ``path`` (WAV) and return its length in seconds."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), "--", text], check=True, capture_output=True)
    return _wav_seconds(path)


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()


@pytest.fixture
def samples(tmp_path: Path) -> list[SpeechSample]:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    made: list[SpeechSample] = []
    for transcript_id, (text, language) in _SENTENCES.items():
        # The stored file's own name is the member's: it must not reach the dataset.
        path = recordings / f"voice message {transcript_id} (final).WAV"
        duration = _speak(path, text, language)
        made.append(SpeechSample(path, text, language, duration, transcript_id, f"speaker-{transcript_id % 2}"))
    return made


def test_export_loads_as_an_audiofolder_with_each_text_beside_its_audio(
    tmp_path: Path, samples: list[SpeechSample]
) -> None:
    import datasets

    missing = SpeechSample(tmp_path / "gone.ogg", "This recording was deleted.", "en", 2.0, 104, "speaker-0")
    unknown = tmp_path / "notes.txt"
    unknown.write_text("not audio")
    not_audio = SpeechSample(unknown, "Not a recording.", None, 1.0, 105, "speaker-1")
    twice = SpeechSample(samples[0].audio_path, "The same transcript again.", "en", 1.0, 101, "speaker-1")

    exports = tmp_path / "exports"
    result = write_speech_dataset([*samples, missing, not_audio, twice], exports, name="../voice notes")

    assert result.written == 3
    assert sorted(result.skipped) == [101, 104, 105]
    assert result.path.parent == exports
    assert result.path.name.startswith("voice_notes-")
    assert result.path.suffix == ".zip"
    assert [p.name for p in exports.iterdir()] == [result.path.name]  # no partial file left

    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(result.path) as zf:
        assert sorted(zf.namelist()) == sorted([METADATA, "data/101.wav", "data/102.wav", "data/103.wav"])
        zf.extractall(unzipped)

    # Streaming: the audiofolder builder's own discovery of the metadata and the clips, without building an Arrow
    # cache (which encodes the audio, and with datasets 5 that needs torchcodec).
    dataset = datasets.load_dataset("audiofolder", data_dir=str(unzipped), split="train", streaming=True)
    assert dataset.features is not None
    assert isinstance(dataset.features["audio"], datasets.Audio)
    assert {"text", "language", "duration_s", "transcript_id", "speaker"} <= set(dataset.features)

    by_id = {sample.transcript_id: sample for sample in samples}
    seen: list[int] = []
    for row in dataset.cast_column("audio", datasets.Value("string")):  # the clip's path, not decoded
        sample = by_id[row["transcript_id"]]
        seen.append(sample.transcript_id)
        assert row["text"] == sample.text
        assert row["language"] == sample.language
        assert row["speaker"] == sample.speaker
        assert row["duration_s"] == pytest.approx(sample.duration_s, abs=0.001)
        audio_path = Path(row["audio"])
        assert audio_path.name == f"{sample.transcript_id}.wav"
        assert audio_path.read_bytes() == sample.audio_path.read_bytes()
        assert _wav_seconds(audio_path) == pytest.approx(row["duration_s"], abs=0.001)
    assert sorted(seen) == sorted(_SENTENCES)


def test_export_decodes_with_datasets(tmp_path: Path, samples: list[SpeechSample]) -> None:
    """The whole way a trainer takes: an Arrow dataset whose audio decodes to the clips' samples."""
    pytest.importorskip("torchcodec.decoders", reason="datasets decodes audio with torchcodec only")
    import datasets

    result = write_speech_dataset(samples, tmp_path / "exports", name="speech")
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(result.path) as zf:
        zf.extractall(unzipped)
    dataset = datasets.load_dataset(
        "audiofolder", data_dir=str(unzipped), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert isinstance(dataset.features["audio"], datasets.Audio)
    by_id = {sample.transcript_id: sample for sample in samples}
    for row in dataset:
        assert isinstance(row, dict)
        sample = by_id[row["transcript_id"]]
        assert row["text"] == sample.text
        decoded = row["audio"].get_all_samples()
        assert decoded.duration_seconds == pytest.approx(sample.duration_s, abs=0.05)


def test_metadata_is_one_json_object_per_clip(tmp_path: Path, samples: list[SpeechSample]) -> None:
    result = write_speech_dataset(samples, tmp_path, name="speech")
    with zipfile.ZipFile(result.path) as zf:
        lines = zf.read(METADATA).decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["transcript_id"] for r in records] == [101, 102, 103]
    assert records[2]["text"] == "Привет, это Ксюша."
    assert all(r["file_name"] == f"data/{r['transcript_id']}.wav" for r in records)


def test_nothing_to_export_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    gone = SpeechSample(tmp_path / "gone.wav", "Gone.", "en", 1.0, 1, "speaker-0")
    exports = tmp_path / "exports"
    with pytest.raises(InvalidInputError, match="None of these transcripts"):
        write_speech_dataset([gone], exports, name="speech")
    assert list(exports.iterdir()) == []


def test_a_symbolic_link_is_not_followed(tmp_path: Path, samples: list[SpeechSample]) -> None:
    link = tmp_path / "link.wav"
    link.symlink_to(samples[0].audio_path)
    linked = SpeechSample(link, "Linked.", "en", 1.0, 200, "speaker-0")
    result = write_speech_dataset([linked, samples[1]], tmp_path / "exports", name="speech")
    assert result.written == 1
    assert result.skipped == (200,)


def test_exports_of_the_same_second_do_not_overwrite_each_other(tmp_path: Path, samples: list[SpeechSample]) -> None:
    first = write_speech_dataset(samples[:1], tmp_path, name="speech")
    second = write_speech_dataset(samples[1:], tmp_path, name="speech")
    assert first.path != second.path
    assert first.path.exists()
    assert second.path.exists()
