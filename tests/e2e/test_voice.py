"""Voice through Discord (HTTP interactions): "Transcribe" on a message with a voice message, ``/transcribe``, a
transcript corrected in place teaching the server's vocabulary (a name misheard before is heard after), the speech
dataset, ``/say`` falling back to the local voice, and the refusals (bad audio, limits, foreign ids, HTTP mode).

Real faster-whisper (the test extra's tiny.en), real PyAV, real espeak-ng; only Discord is a stand-in."""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import av
import pytest
import pytest_asyncio
from sqlalchemy import select

from hypotez.keys import Key, build_key
from hypotez.storage.models import Transcript, TranscriptCorrection
from tests.conftest import running_hypotez
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    GUILD_ID,
    Attachment,
    button,
    in_other_guild,
    message_command,
    message_payload,
    slash,
)
from tests.fixtures.audio import CORRUPT, NAME, NAME_OGG, SENTENCE_WORDS, SILENT_OGG, VOICE_MP3, VOICE_OGG

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

#: Transcription shares two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)

VOICE_FLAG = 1 << 13


def _voice_message(hz: RunningBot, path: Any = VOICE_OGG) -> dict[str, Any]:
    """A member's voice message as Discord sends it, its recording served by the REST stand-in."""
    audio = hz.rest.host(
        Attachment("voice-message.ogg", path.read_bytes(), content_type="audio/ogg", duration_secs=4.2, waveform="AAAA")
    )
    return message_payload("", author_bot=False, attachments=[audio], flags=VOICE_FLAG)


async def _transcripts(hz: RunningBot) -> list[Transcript]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(Transcript).order_by(Transcript.id))).all())


def _final(result: InteractionResult) -> dict[str, Any]:
    message = result.original_message
    assert message is not None
    return message


@pytest_asyncio.fixture
async def hz(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    settings = bot_settings.model_copy(update={"tts_retries": 0, "tts_timeout": 3.0})
    async with running_hypotez(settings, openai_fake) as running:
        yield running


@pytest.mark.asyncio
async def test_transcribe_a_voice_message_then_correct_it_and_the_name_is_heard_next_time(hz: RunningBot) -> None:
    # Before: the made-up name is misheard.
    first = await hz.send(message_command("Transcribe", _voice_message(hz, NAME_OGG)))
    shown = _final(first)
    assert "🗣️ **Transcript**" in shown["content"]
    assert NAME.lower() not in shown["content"].lower()
    [row] = await _transcripts(hz)
    assert row.source == "menu"
    assert row.reply_message_id == int(shown["id"])
    assert row.language == "en"
    assert row.segments
    assert row.duration_s > 1
    assert row.audio_path is not None
    kept = hz.settings.data_dir / "guilds" / str(GUILD_ID) / row.audio_path
    assert kept.read_bytes() == NAME_OGG.read_bytes()

    # "Correct this transcript" on the bot's message: a box prefilled with what was heard.
    opened = await hz.send(message_command("Correct this transcript", shown))
    assert opened.modal is not None
    assert opened.modal.input("Corrected transcript").value == row.text
    corrected = f"Please call {NAME} tomorrow."
    saved = await hz.send(opened.modal.submit({"Corrected transcript": corrected}))
    assert saved.ephemeral
    assert saved.content is not None
    assert f"**{NAME}**" in saved.content  # learned into the server's vocabulary

    shown_vocabulary = await hz.send(slash("vocabulary", subcommand="show"))
    assert shown_vocabulary.content is not None
    assert NAME in shown_vocabulary.content

    # After: the same recording, as a new voice message, is heard with the name.
    second = await hz.send(message_command("Transcribe", _voice_message(hz, NAME_OGG)))
    assert NAME.lower() in _final(second)["content"].lower()

    # The corrected transcript and its recording make a speech dataset.
    exported = await hz.send(
        slash("dataset", {"name": "voices", "format": "speech"}, subcommand="export", user=ADMIN_MEMBER)
    )
    files = [f for call in exported.followups for f in call.files]
    [archive] = [f for f in files if f.filename.endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        names = bundle.namelist()
        manifest = [
            json.loads(line)
            for line in bundle.read(next(n for n in names if n.endswith("metadata.jsonl"))).decode().splitlines()
        ]
        [entry] = manifest
        assert entry["text"] == corrected
        audio_name = next(n for n in names if n.endswith(entry["file_name"]))
        assert bundle.read(audio_name) == NAME_OGG.read_bytes()


@pytest.mark.asyncio
async def test_transcribe_command_with_subtitles_and_a_correct_button(hz: RunningBot) -> None:
    upload = hz.rest.host(Attachment("meeting.mp3", VOICE_MP3.read_bytes(), content_type="audio/mpeg"))
    result = await hz.send(slash("transcribe", {"file": upload, "format": "srt"}, attachments=[upload]))
    message = _final(result)
    text = message["content"].lower()
    assert all(word in text for word in SENTENCE_WORDS)
    srt = [f for call in result.followups for f in call.files if f.filename.endswith(".srt")]
    assert srt
    assert "00:00:0" in srt[-1].content.decode()
    assert " --> " in srt[-1].content.decode()
    [row] = await _transcripts(hz)
    assert row.source == "command"
    custom_ids = [c["custom_id"] for r in message["components"] for c in r["components"]]
    assert build_key(Key.TRANSCRIPT_CORRECT, row.id) in custom_ids

    # The button opens the box; from another server the same id names nothing there.
    press = await hz.send(button(build_key(Key.TRANSCRIPT_CORRECT, row.id), message))
    assert press.modal is not None
    foreign = await hz.send(
        in_other_guild(button(build_key(Key.TRANSCRIPT_CORRECT, row.id), message), 1_100_000_000_000_000_777)
    )
    assert foreign.modal is None
    assert foreign.content is not None
    assert "no longer exists here" in foreign.content
    submitted = await hz.send(
        in_other_guild(
            press.modal.submit({"Corrected transcript": "hijacked"}),
            1_100_000_000_000_000_777,
        )
    )
    assert submitted.content is not None
    assert "no longer exists here" in submitted.content
    async with hz.services.db.session() as session:
        assert (await session.scalars(select(TranscriptCorrection))).all() == []


@pytest.mark.asyncio
async def test_bad_audio_gets_a_clear_answer_and_nothing_is_stored(hz: RunningBot) -> None:
    corrupt = hz.rest.host(Attachment("broken.ogg", CORRUPT.read_bytes(), content_type="audio/ogg"))
    silent = hz.rest.host(Attachment("quiet.ogg", SILENT_OGG.read_bytes(), content_type="audio/ogg"))
    text = hz.rest.host(Attachment("notes.txt", b"hello", content_type="text/plain"))
    answers: list[str] = []
    for upload in (corrupt, silent):
        result = await hz.send(slash("transcribe", {"file": upload}, attachments=[upload]))
        answers.append(" ".join((c.json or {}).get("content", "") for c in result.followups))
    assert "could not be decoded" in answers[0]
    assert "No speech" in answers[1]
    refused = await hz.send(slash("transcribe", {"file": text}, attachments=[text]))
    assert refused.content is not None
    assert "not an audio or video file" in refused.content
    no_audio = await hz.send(message_command("Transcribe", message_payload("just text", author_bot=False)))
    assert no_audio.content is not None
    assert "no voice message" in no_audio.content
    assert await _transcripts(hz) == []


@pytest.mark.asyncio
async def test_oversize_recordings_are_refused_before_download(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    settings = bot_settings.model_copy(update={"voice_max_bytes": 1000})
    async with running_hypotez(settings, openai_fake) as hz:
        upload = hz.rest.host(Attachment("long.ogg", VOICE_OGG.read_bytes(), content_type="audio/ogg"))
        result = await hz.send(slash("transcribe", {"file": upload}, attachments=[upload]))
        answer = " ".join((c.json or {}).get("content", "") for c in result.followups) + (result.content or "")
        assert "HYPOTEZ_VOICE_MAX_BYTES" in answer
        assert not hz.rest.calls_to("GET", "/attachments/")


@pytest.mark.asyncio
async def test_say_without_a_voice_channel_attaches_speech_from_the_local_voice(hz: RunningBot) -> None:
    """In HTTP mode the bot cannot join voice: the audio comes as a file.  Microsoft's service is unreachable
    here, so espeak-ng speaks and the member is told."""
    result = await hz.send(slash("say", {"text": "Good morning, everyone."}))
    calls = result.followups
    content = " ".join((c.json or {}).get("content", "") for c in calls)
    assert "local voice" in content
    [clip] = [f for c in calls for f in c.files if f.filename.startswith("speech.")]
    with av.open(io.BytesIO(clip.content), mode="r") as container:
        frames = list(container.decode(audio=0))
    assert sum(f.samples / f.sample_rate for f in frames) > 0.5

    join = await hz.send(slash("voice", subcommand="join"))
    assert join.content is not None
    assert "Join a voice channel first" in join.content


@pytest.mark.asyncio
async def test_voice_settings_are_for_administrators(hz: RunningBot) -> None:
    member = await hz.send(slash("voice", {"transcribe": True}, subcommand="settings"))
    assert member.content is not None
    assert "admin" in member.content.lower()
    admin = await hz.send(
        slash("voice", {"transcribe": True, "answer": True}, subcommand="settings", user=ADMIN_MEMBER)
    )
    assert admin.content is not None
    assert "transcribe voice messages **on**" in admin.content
    assert "answer them **on**" in admin.content
    here = await hz.services.guild_settings.effective(GUILD_ID, int(slash("voice")["channel_id"]))
    assert here.voice_transcribe
    assert here.voice_answer
    assert not here.voice_speak


def _long_recording() -> bytes:
    """About 20 s of different sentences with pauses (several segments; a repeated sentence would make whisper's
    temperature fallback sample at random)."""
    import numpy as np

    from tests.fixtures.audio.make_fixtures import encode, silence, speak

    sentences = [
        "Hello everyone, the meeting starts at nine tomorrow morning.",
        "We will talk about the garden first.",
        "Then the budget for next year.",
        "The library opens at eight on Mondays.",
    ]
    parts = [piece for sentence in sentences for piece in (speak(sentence), silence(1.5))]
    return encode(np.concatenate(parts), "ogg")


@pytest.mark.asyncio
async def test_long_recordings_show_progress_and_correct_works_on_the_transcript(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypotez.plugins import transcription

    monkeypatch.setattr(transcription, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(transcription, "PROGRESS_INTERVAL_S", 0.0)
    upload = hz.rest.host(Attachment("talk.ogg", _long_recording(), content_type="audio/ogg"))
    result = await hz.send(slash("transcribe", {"file": upload}, attachments=[upload]))
    edits = [(c.json or {}).get("content", "") for c in result.followups]
    progress = [e for e in edits if e.startswith("⏳ Transcribing `talk.ogg`")]
    assert progress, edits
    assert all("%" in e for e in progress)
    assert edits[-1].startswith("🗣️ **Transcript**")
    assert {"tomorrow", "garden", "library"} <= set(edits[-1].lower().replace(".", " ").replace(",", " ").split())

    # /correct names the transcript's message: the transcript is corrected, not a reply.
    message = _final(result)
    fixed = "Hello everyone, the meeting starts at nine tomorrow morning. We talk about the garden first."
    answer = await hz.send(slash("correct", {"message_id": message["id"], "correction": fixed}))
    assert answer.content is not None
    assert "Transcript correction saved" in answer.content
    async with hz.services.db.session() as session:
        [stored] = (await session.scalars(select(TranscriptCorrection))).all()
    assert stored.corrected_text == fixed.strip()
