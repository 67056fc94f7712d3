"""``/privacy``: a member's data exported and forgotten, through the real stack.

Two members chat, correct, rate, transcribe (real faster-whisper), vote in the arena and set preferences; a curator
approves so their examples are in the live ``corrections`` dataset and in a built version.  ``/privacy export``
gives the first their data (contents checked); ``/privacy forget-me`` asks, refuses a Confirm pressed by anyone
else, and on their own Confirm deletes every row of theirs (each table queried), their examples from every dataset
version, their recording from disk, and says that models cannot un-learn — the second member's data untouched.
An administrator forgets a member who left, in their server only."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
import zipfile
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, or_, select

from hypotez.keys import Key, build_key
from hypotez.storage.models import (
    ArenaMatch,
    ArenaVote,
    AuditEntry,
    BotReply,
    Cooldown,
    Correction,
    Dataset,
    DatasetExample,
    EvaluationRun,
    Feedback,
    JobExample,
    MemberPreferences,
    ReplyMessage,
    ReviewItem,
    ReviewVote,
    TrainingJob,
    Transcript,
    TranscriptCorrection,
)
from hypotez.storage.repositories import ReviewRepository
from hypotez.storage.repositories.privacy import BATCH
from tests.conftest import approve_pending
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    CHANNEL_ID,
    DEFAULT_MEMBER,
    GUILD_ID,
    USER_ID,
    Attachment,
    UserRef,
    button,
    in_other_guild,
    member_payload,
    message_payload,
    said,
    slash,
    user_payload,
)
from tests.fixtures.audio import SENTENCE_WORDS, VOICE_OGG

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult

#: Transcription shares the machine's cores with whatever else runs.
pytestmark = pytest.mark.timeout(600)

ALICE_ID = USER_ID
BOB_ID = 1_100_000_000_000_000_322
ALICE = DEFAULT_MEMBER
BOB = member_payload(user_payload(BOB_ID, "bob"))
OTHER_GUILD = 1_100_000_000_000_000_888
REVIEW_CHANNEL_ID = 1_100_000_000_000_000_251
STRONG, WEAK = "gpt-4o-mini", "gpt-4.1-mini"


def _by_model(messages: list[dict[str, Any]], model: str) -> str:
    del messages
    return {STRONG: "Paris, of course.", WEAK: "Lyon, I believe."}[model]


def _ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]


def _files(result: InteractionResult) -> list[Any]:
    return [*result.files, *(f for call in result.followups for f in call.files)]


async def _life(
    hz: RunningBot, member: dict[str, Any], name: str, match_message: dict[str, Any], side: str
) -> dict[str, Any]:
    """``member`` chats, corrects the reply, rates another, transcribes a recording and votes on the match;
    returns the message showing the transcript."""
    hz.openai.reply_with(f"{name}, the capital is Sydney.")
    asked = await hz.send(slash("chat", {"message": f"{name} asks: what is the capital of Australia?"}, user=member))
    reply = asked.original_message
    assert reply is not None, said(asked)
    await hz.send(slash("correct", {"message_id": reply["id"], "correction": f"Canberra, says {name}."}, user=member))
    hz.openai.reply_with(f"{name}, water boils at 100 degrees Celsius at sea level.")
    second = await hz.send(slash("chat", {"message": f"{name} asks: when does water boil?"}, user=member))
    rated_message = second.original_message
    assert rated_message is not None
    up = [i for i in _ids(rated_message) if i.startswith(Key.RATE_UP.value)]
    assert up, _ids(rated_message)
    await hz.send(button(up[0], rated_message, user=member))
    upload = hz.rest.host(Attachment(f"{name}.ogg", VOICE_OGG.read_bytes(), content_type="audio/ogg"))
    heard = await hz.send(slash("transcribe", {"file": upload}, attachments=[upload], user=member))
    assert all(word in said(heard).lower() for word in SENTENCE_WORDS), said(heard)
    vote = {i.rsplit(":", 1)[1]: i for i in _ids(match_message)}[side]
    await hz.send(button(vote, match_message, user=member))
    shown = heard.original_message
    assert shown is not None
    return shown


async def _count(hz: RunningBot, model: Any, *where: Any) -> int:
    async with hz.services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _rows_of(hz: RunningBot, uid: int) -> dict[str, int]:
    """How many rows of every table name ``uid``."""
    return {
        "bot_replies": await _count(hz, BotReply, BotReply.author_id == uid),
        "corrections": await _count(hz, Correction, Correction.author_id == uid),
        "feedback": await _count(hz, Feedback, Feedback.author_id == uid),
        "review_items": await _count(hz, ReviewItem, ReviewItem.author_id == uid),
        "review_votes": await _count(hz, ReviewVote, ReviewVote.curator_id == uid),
        "transcripts": await _count(hz, Transcript, Transcript.author_id == uid),
        "transcript_corrections": await _count(hz, TranscriptCorrection, TranscriptCorrection.author_id == uid),
        "arena_votes": await _count(hz, ArenaVote, ArenaVote.voter_id == uid),
        "arena_matches": await _count(hz, ArenaMatch, ArenaMatch.author_id == uid),
        "member_preferences": await _count(hz, MemberPreferences, MemberPreferences.user_id == uid),
        "cooldowns": await _count(hz, Cooldown, Cooldown.key.endswith(f":user:{uid}")),
        "audit_log": await _count(
            hz, AuditEntry, or_(AuditEntry.actor_id == uid, AuditEntry.target.contains(str(uid)))
        ),
    }


async def _examples(hz: RunningBot) -> dict[str, set[str]]:
    """Every dataset version's example refs, by ``name@version``."""
    async with hz.services.db.session() as session:
        rows = await session.execute(
            select(Dataset.name, Dataset.version, DatasetExample.source_ref).join(
                DatasetExample, DatasetExample.dataset_id == Dataset.id
            )
        )
        found: dict[str, set[str]] = {}
        for name, version, ref in rows:
            found.setdefault(f"{name}@{version}", set()).add(f"{ref}")
        return found


async def _refs_of(hz: RunningBot, uid: int) -> set[str]:
    async with hz.services.db.session() as session:
        corrections = (await session.scalars(select(Correction.id).where(Correction.author_id == uid))).all()
        replies = (await session.scalars(select(BotReply.id).where(BotReply.author_id == uid))).all()
        votes = (
            await session.execute(select(ArenaVote.match_id, ArenaVote.choice).where(ArenaVote.voter_id == uid))
        ).all()
    return (
        {f"correction:{i}" for i in corrections}
        | {f"reply:{i}" for i in replies}
        | {f"arena:{m}:{c}" for m, c in votes}
    )


def _audio(hz: RunningBot, transcript: Transcript) -> Path:
    assert transcript.audio_path is not None
    assert transcript.guild_id is not None
    return hz.services.data_dir.for_guild(transcript.guild_id).root / transcript.audio_path


async def _transcript_of(hz: RunningBot, uid: int) -> Transcript:
    async with hz.services.db.session() as session:
        return (await session.scalars(select(Transcript).where(Transcript.author_id == uid))).one()


@pytest.mark.asyncio
async def test_forget_me_deletes_every_row_of_the_member_and_their_examples_and_export_gives_them_back(
    hz: RunningBot,
) -> None:
    await hz.app.get(ReviewRepository).set_policy(GUILD_ID, channel_id=REVIEW_CHANNEL_ID)
    hz.openai.reply_with(_by_model)
    started = await hz.send(
        slash(
            "arena",
            {"message": "Capital of France?", "model_a": STRONG, "model_b": WEAK},
            subcommand="start",
            user=ADMIN_MEMBER,
        )
    )
    match_message = started.original_message
    assert match_message is not None, said(started)
    alice_shown = await _life(hz, ALICE, "Alice", match_message, "a")
    await _life(hz, BOB, "Bob", match_message, "b")
    # Alice also starts a match of her own, corrects her transcript and sets a preference.
    hz.openai.reply_with(_by_model)
    own_match = await hz.send(
        slash(
            "arena", {"message": "Alice wonders: biggest city?", "model_a": STRONG, "model_b": WEAK}, subcommand="start"
        )
    )
    own_message = own_match.original_message
    assert own_message is not None, said(own_match)
    alice_transcript = await _transcript_of(hz, ALICE_ID)
    bob_transcript = await _transcript_of(hz, BOB_ID)
    press = await hz.send(button(build_key(Key.TRANSCRIPT_CORRECT, alice_transcript.id), alice_shown))
    assert press.modal is not None
    await hz.send(press.modal.submit({"Corrected transcript": "Alice said this, corrected by Alice."}))
    await hz.send(slash("preferences", {"private": False}, subcommand="set"))

    # A curator approves everything: the corrections are in the live dataset, and a built version holds them.
    assert await approve_pending(hz.app) >= 6
    built = await hz.send(slash("dataset", {"name": "built"}, subcommand="build", user=ADMIN_MEMBER))
    assert "built" in said(built), said(built)
    exported_set = await hz.send(slash("dataset", {"name": "built"}, subcommand="export", user=ADMIN_MEMBER))
    assert _files(exported_set), said(exported_set)
    # A version archived before she asks is kept as it is (archives are records).
    await hz.send(slash("dataset", {"name": "old"}, subcommand="build", user=ADMIN_MEMBER))
    archived = await hz.send(slash("dataset", {"name": "old"}, subcommand="archive", user=ADMIN_MEMBER))
    assert "archive" in said(archived).lower(), said(archived)
    # Alice, as a curator too, decided one of Bob's items (her vote is kept, anonymised).
    async with hz.services.db.session() as session:
        bob_item = (await session.scalars(select(ReviewItem).where(ReviewItem.author_id == BOB_ID))).first()
        assert bob_item is not None
        session.add(ReviewVote(item_id=bob_item.id, curator_id=ALICE_ID, vote="approve", reason="Alice's reason"))
        await session.commit()

    async with hz.services.db.session() as session:
        posts = {
            author: {m for m in found if m is not None}
            for author in (ALICE_ID, BOB_ID)
            for found in [
                (
                    await session.scalars(select(ReviewItem.posted_message_id).where(ReviewItem.author_id == author))
                ).all()
            ]
        }
    assert posts[ALICE_ID]
    assert posts[BOB_ID]
    alice_before = await _rows_of(hz, ALICE_ID)
    bob_before = await _rows_of(hz, BOB_ID)
    for table in ("bot_replies", "corrections", "feedback", "review_items", "transcripts", "arena_votes"):
        assert alice_before[table] >= 1, (table, alice_before)
        assert bob_before[table] >= 1, (table, bob_before)
    assert alice_before["arena_matches"] == 1
    assert alice_before["transcript_corrections"] == 1
    assert alice_before["member_preferences"] == 1
    assert alice_before["cooldowns"] >= 1
    alice_refs = await _refs_of(hz, ALICE_ID)
    bob_refs = await _refs_of(hz, BOB_ID)
    examples_before = await _examples(hz)
    assert alice_refs & examples_before["corrections@1"]
    assert alice_refs & examples_before["built@1"]
    assert bob_refs & examples_before["built@1"]
    async with hz.services.db.session() as session:
        alice_replies = (await session.scalars(select(BotReply.id).where(BotReply.author_id == ALICE_ID))).all()
    assert await _count(hz, ReplyMessage, ReplyMessage.reply_id.in_(alice_replies)) >= 2
    assert _audio(hz, alice_transcript).is_file()
    assert _audio(hz, bob_transcript).is_file()

    # Export: her data, and none of Bob's.
    exported = await hz.send(slash("privacy", subcommand="export"))
    [archive] = [f for f in _files(exported) if f.filename.endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = set(zf.namelist())
        sections = {
            n.removesuffix(".jsonl"): [json.loads(line) for line in zf.read(n).decode().splitlines()]
            for n in names
            if n.endswith(".jsonl")
        }
        assert f"audio/{alice_transcript.id}.ogg" in names
        assert zf.read(f"audio/{alice_transcript.id}.ogg") == VOICE_OGG.read_bytes()
    assert {r["your_message"] for r in sections["replies"]} == {
        "Alice asks: what is the capital of Australia?",
        "Alice asks: when does water boil?",
    }
    assert [c["corrected_text"] for c in sections["corrections"]] == ["Canberra, says Alice."]
    assert [f["rating"] for f in sections["feedback"]] == [1]
    assert [t["id"] for t in sections["transcripts"]] == [alice_transcript.id]
    assert [c["corrected_text"] for c in sections["transcript_corrections"]] == ["Alice said this, corrected by Alice."]
    assert [(v["choice"], v["question"]) for v in sections["arena_votes"]] == [("a", "Capital of France?")]
    assert [m["user_text"] for m in sections["arena_matches"]] == ["Alice wonders: biggest city?"]
    assert [v["reason"] for v in sections["review_votes"]] == ["Alice's reason"]
    assert [p["private_replies"] for p in sections["preferences"]] == [False]
    assert "Bob" not in json.dumps(sections)
    alice_before["audit_log"] += 1  # the export is audit-logged
    assert await _rows_of(hz, ALICE_ID) == alice_before

    # forget-me asks first; Bob's press of her Confirm is refused and deletes nothing.
    asked = await hz.send(slash("privacy", subcommand="forget-me"))
    assert asked.ephemeral
    assert "cannot un-learn" in said(asked)
    confirm = build_key(Key.PRIVACY_FORGET_CONFIRM, ALICE_ID, 0)
    assert confirm in [c["custom_id"] for row in asked.components for c in row["components"]]
    prompt = {
        "id": "1",
        "channel_id": str(match_message["channel_id"]),
        "content": asked.content,
        "components": asked.components,
    }
    prompt = match_message | prompt
    refused = await hz.send(button(confirm, prompt, user=BOB))
    assert "Only the member whose data this is" in said(refused)
    assert await _rows_of(hz, ALICE_ID) == alice_before
    kept = await hz.send(button(build_key(Key.PRIVACY_FORGET_KEEP, ALICE_ID, 0), prompt))
    assert "Nothing was deleted" in said(kept)
    assert await _rows_of(hz, ALICE_ID) == alice_before

    audit_total = await _count(hz, AuditEntry)
    done = await hz.send(button(confirm, prompt))
    answer = said(done)
    assert "Trained models cannot un-learn" in answer, answer
    assert "Deleted your data" in answer
    assert "Archives (`archive/`) are kept" in answer
    assert "`old@1`" in answer  # the archived version still holding her examples is named
    assert "exports/" in answer  # and the export made since, not rewritten
    # The public message of the match she started is deleted from Discord (it showed her question).
    assert hz.rest.calls_to("DELETE", f"/channels/{own_message['channel_id']}/messages/{own_message['id']}")
    assert not hz.rest.calls_to("DELETE", f"/messages/{match_message['id']}")
    # So are the review channel's posts of her items; Bob's stay.
    deleted = {int(c.path.rsplit("/", 1)[1]) for c in hz.rest.calls_to("DELETE", f"/channels/{REVIEW_CHANNEL_ID}/")}
    assert deleted == posts[ALICE_ID]

    # Every row of hers is gone (the audit log kept its entries, her id replaced); Bob's are all there.
    assert await _rows_of(hz, ALICE_ID) == dict.fromkeys(alice_before, 0)
    assert await _count(hz, ReplyMessage, ReplyMessage.reply_id.in_(alice_replies)) == 0
    assert await _count(hz, ReviewVote, ReviewVote.item_id == bob_item.id, ReviewVote.curator_id < 0) == 1
    assert await _count(hz, AuditEntry) == audit_total + 1
    bob_after = await _rows_of(hz, BOB_ID)
    assert bob_after == bob_before, (bob_after, bob_before)
    # Every dataset version lost exactly her examples.
    examples_after = await _examples(hz)
    assert alice_refs & examples_before["old@1"]
    for version, refs in examples_before.items():
        expected = refs if version == "old@1" else refs - alice_refs
        assert examples_after.get(version, set()) == expected, version
    assert bob_refs & examples_after["built@1"]
    assert not _audio(hz, alice_transcript).exists()
    assert _audio(hz, bob_transcript).is_file()
    # Another export finds nothing of hers.
    again = await hz.send(slash("privacy", subcommand="export"))
    [empty] = [f for f in _files(again) if f.filename.endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(empty.content)) as zf:
        assert all(not zf.read(n) for n in zf.namelist() if n.endswith(".jsonl"))


@pytest.mark.asyncio
async def test_an_administrator_forgets_a_departed_member_in_their_server_only(hz: RunningBot) -> None:
    carol_id = 1_100_000_000_000_000_323
    carol = member_payload(user_payload(carol_id, "carol"))
    hz.openai.reply_with("An answer for Carol.")
    await hz.send(slash("chat", {"message": "Carol here, in the first server."}, user=carol))
    elsewhere = await hz.send(in_other_guild(slash("chat", {"message": "Carol, elsewhere."}, user=carol), OTHER_GUILD))
    assert elsewhere.original_message is not None, said(elsewhere)
    assert await _count(hz, BotReply, BotReply.author_id == carol_id) == 2

    ref = UserRef(user_payload(carol_id, "carol"))
    # Members lack it; a direct message has no server to scope it to.
    member = await hz.send(slash("privacy", {"member": ref}, subcommand="forget", user=BOB))
    assert "You need the `admin` capability" in said(member)
    direct = await hz.send(
        slash("privacy", {"member": ref}, subcommand="forget", user=ADMIN_MEMBER["user"], guild=False)
    )
    assert "only in a server" in said(direct)
    peek = await hz.send(slash("privacy", {"member": ref}, subcommand="export", user=BOB))
    assert "You need the `admin` capability" in said(peek)
    assert not _files(peek)

    # The administrator's export holds this server's data of hers only.
    exported = await hz.send(slash("privacy", {"member": ref}, subcommand="export", user=ADMIN_MEMBER))
    [archive] = [f for f in _files(exported) if f.filename.endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        replies = [json.loads(line) for line in zf.read("replies.jsonl").decode().splitlines()]
    assert [r["your_message"] for r in replies] == ["Carol here, in the first server."]

    asked = await hz.send(slash("privacy", {"member": ref}, subcommand="forget", user=ADMIN_MEMBER))
    confirm = build_key(Key.PRIVACY_FORGET_CONFIRM, carol_id, GUILD_ID)
    assert confirm in [c["custom_id"] for row in asked.components for c in row["components"]]
    prompt = elsewhere.original_message | {"content": asked.content, "components": asked.components}
    # Pressed in another server, by a member there who is an administrator there: refused.
    foreign = await hz.send(in_other_guild(button(confirm, prompt, user=ADMIN_MEMBER), OTHER_GUILD))
    assert "belongs to another server" in said(foreign)
    # By a member of this server without `admin`: refused.
    not_admin = await hz.send(button(confirm, prompt, user=BOB))
    assert "admin" in said(not_admin)
    assert await _count(hz, BotReply, BotReply.author_id == carol_id) == 2

    done = await hz.send(button(confirm, prompt, user=ADMIN_MEMBER))
    assert "cannot un-learn" in said(done), said(done)
    async with hz.services.db.session() as session:
        left = (await session.scalars(select(BotReply).where(BotReply.author_id == carol_id))).all()
        [entry] = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "privacy.forget"))).all()
    assert [(r.guild_id, r.user_text) for r in left] == [(OTHER_GUILD, "Carol, elsewhere.")]
    assert entry.guild_id == GUILD_ID
    assert entry.actor_id == int(ADMIN_MEMBER["user"]["id"])
    assert str(carol_id) not in json.dumps(entry.details) + (entry.target or "")


@pytest.mark.asyncio
async def test_a_long_history_is_forgotten_in_batches_without_stalling_the_bot(hz: RunningBot) -> None:
    dana_id = 1_100_000_000_000_000_324
    dana = member_payload(user_payload(dana_id, "dana"))
    count = 3000
    db = hz.services.db
    async with db.session() as session, session.begin():
        dataset = Dataset(guild_id=GUILD_ID, name="bulk")
        session.add(dataset)
        await session.flush()
        replies = [
            BotReply(
                guild_id=GUILD_ID,
                channel_id=CHANNEL_ID,
                author_id=author,
                backend="openai",
                model="gpt-4o-mini",
                prompt_messages=[{"role": "user", "content": text}],
                content=f"Answer {n}.",
                user_text=text,
            )
            for n in range(count + 1)
            for author, text in [
                (dana_id, f"Dana's question number {n}") if n < count else (BOB_ID, "Bob's own question")
            ]
        ]
        session.add_all(replies)
        await session.flush()
        corrections = [
            Correction(
                reply_id=r.id,
                guild_id=GUILD_ID,
                channel_id=CHANNEL_ID,
                author_id=r.author_id,
                context=r.prompt_messages,
                original_text=r.content,
                corrected_text=f"A better answer to {r.user_text}",
            )
            for r in replies
        ]
        session.add_all(corrections)
        await session.flush()
        session.add_all(
            DatasetExample(
                dataset_id=dataset.id,
                kind="chat",
                origin="correction",
                source_ref=f"correction:{c.id}",
                messages=[*c.context, {"role": "assistant", "content": c.corrected_text}],
                content_hash=f"{c.id:064d}",
            )
            for c in corrections
        )
        job = TrainingJob(
            guild_id=GUILD_ID,
            requested_by=int(ADMIN_MEMBER["user"]["id"]),
            idempotency_key="bulk",
            trainer="local",
            base_model="tiny",
            dataset_id=dataset.id,
            status="succeeded",
            result_model="bulk-model",
        )
        session.add(job)
        await session.flush()
        kept_texts = [*(f"Dana's question number {n}" for n in range(50)), "Bob's own question"]
        session.add_all(
            JobExample(job_id=job.id, split="train", position=n, record={"messages": [{"role": "user", "content": t}]})
            for n, t in enumerate(kept_texts)
        )
        session.add(
            EvaluationRun(
                guild_id=GUILD_ID,
                requested_by=dana_id,
                kind="run",
                model="bulk-model",
                job_id=job.id,
                cases=[{"input": "Dana's question number 7", "got": "x"}, {"input": "Bob's own question", "got": "y"}],
            )
        )
        transcript = Transcript(
            guild_id=GUILD_ID, author_id=dana_id, text="Dana speaking here.", model="tiny", audio_path="audio/1.ogg"
        )
        session.add(transcript)
    recording = hz.services.data_dir.for_guild(GUILD_ID).root / "audio" / "1.ogg"
    recording.parent.mkdir(parents=True, exist_ok=True)
    recording.write_bytes(os.urandom(500_000))

    # An export over the interaction's upload limit leaves the recording out and lists it; one that cannot fit
    # even without it is refused with the sizes.
    small = slash("privacy", subcommand="export", user=dana) | {"attachment_size_limit": 400_000}
    exported = await hz.send(small)
    [archive] = [f for f in _files(exported) if f.filename.endswith(".zip")]
    assert len(archive.content) <= 400_000
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert not [n for n in zf.namelist() if n.startswith("audio/")]
        assert "audio/1.ogg" in zf.read("audio-not-included.txt").decode()
        assert len(zf.read("replies.jsonl").decode().splitlines()) == count
    assert "1 recordings did not fit" in said(exported)
    tiny = await hz.send(slash("privacy", subcommand="export", user=dana) | {"attachment_size_limit": 2_000})
    assert "this reply can carry" in said(tiny)
    assert not _files(tiny)

    # The deletion: no statement carries more than a batch of ids, and the loop keeps ticking.
    largest = 0

    def watch(_conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        nonlocal largest
        if not executemany and parameters is not None:
            largest = max(largest, len(parameters))

    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    from sqlalchemy import event

    event.listen(db.engine.sync_engine, "before_cursor_execute", watch)
    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    try:
        done = await hz.send(
            button(build_key(Key.PRIVACY_FORGET_CONFIRM, dana_id, 0), message_payload("?", author_bot=True), user=dana)
        )
    finally:
        stop.set()
        await ticker
        event.remove(db.engine.sync_engine, "before_cursor_execute", watch)
    took = time.perf_counter() - started
    print(
        f"forgot {count} replies, {count} corrections and {count} examples in {took:.2f} s; "
        f"longest event-loop gap {max(gaps) * 1000:.0f} ms; largest statement {largest} parameters"
    )
    answer = said(done)
    assert f"{count} replies of the bot to you" in answer, answer
    assert f"`bulk@1` ({count})" in answer
    assert f"#{job.id} (succeeded, model bulk-model)" in answer
    assert "cannot un-learn" in answer
    assert largest <= BATCH + 10
    # Work done on the loop in one go would show as one gap about as long as the whole deletion (load on the
    # machine stretches both alike).
    assert max(gaps) < took / 2

    assert await _count(hz, BotReply, BotReply.author_id == dana_id) == 0
    assert await _count(hz, Correction, Correction.author_id == dana_id) == 0
    assert await _count(hz, BotReply, BotReply.author_id == BOB_ID) == 1
    async with db.session() as session:
        refs = (
            await session.scalars(select(DatasetExample.source_ref).where(DatasetExample.dataset_id == dataset.id))
        ).all()
        bob_correction = (await session.scalars(select(Correction.id).where(Correction.author_id == BOB_ID))).one()
        records = (await session.scalars(select(JobExample.record).where(JobExample.job_id == job.id))).all()
        run = (await session.scalars(select(EvaluationRun))).one()
    assert refs == [f"correction:{bob_correction}"]
    assert records == [{"messages": [{"role": "user", "content": "Bob's own question"}]}]
    assert run.cases == [{"input": "Bob's own question", "got": "y"}]
    assert run.requested_by == 0
    assert not recording.exists()
