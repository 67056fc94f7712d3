"""What survives the process: ``hypotez run --http`` as a real process killed with SIGKILL in the middle of a burst
of corrections and ratings (nothing acknowledged is lost), and stopped with SIGTERM or SIGINT while a slow /chat is
in flight (it answers, exits 0 and prints no traceback)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from hypotez.storage import Database
from hypotez.storage.models import BotReply, Correction, Feedback, ReviewItem
from hypotez.voice.stt import Transcriber, TranscriberStoppedError
from tests.conftest import running_hypotez
from tests.fakes.bot_process import BotProcess
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    Attachment,
    InteractionResult,
    button,
    member_payload,
    said,
    slash,
    user_payload,
)
from tests.fixtures.audio import SENTENCE_WORDS, VOICE_MP3

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI

#: What the bot tells a member once their correction or rating is stored.
_SUCCESS = {"correction": "Correction saved", "rating": "Thanks for the 👍", "approval": "You approved #"}

#: Seconds a stopped process may take to exit (it finishes what runs first; CI machines are loaded).
EXIT_BOUND = 45.0


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscordREST]:
    async with FakeDiscordREST() as fake:
        yield fake


def _member(n: int) -> dict[str, Any]:
    return member_payload(user_payload(1_100_000_000_000_010_000 + n, f"member{n}"))


def _seen(payload: Mapping[str, Any], rest: FakeDiscordREST) -> InteractionResult:
    """What Discord recorded of an interaction whose HTTP answer never came back (the process died): its REST
    callback and follow-ups."""
    return InteractionResult(
        status=0, body=b"", content_type="", body_json=None, body_files=[], payload=payload, rest=rest
    )


async def _stored_replies(bot: BotProcess, openai: FakeOpenAI, count: int) -> list[dict[str, Any]]:
    """``count`` replies of the bot, each a message on the stand-in Discord."""
    messages: list[dict[str, Any]] = []
    for n in range(count):
        openai.reply_with(f"Answer number {n}.")
        asked = await bot.client.send(slash("chat", {"message": f"Question {n}?"}))
        await asked.wait_for_followups(timeout=30)
        answer = f"Answer number {n}."
        await bot.rest.wait_for(lambda a=asked, t=answer: t in str(a.content), timeout=30)
        message = asked.original_message
        assert message is not None, said(asked)
        messages.append(message)
    return messages


@pytest.mark.asyncio
async def test_nothing_acknowledged_is_lost_when_the_process_is_killed(
    tmp_path: Path, database_url: str, openai_fake: FakeOpenAI, discord: FakeDiscordREST
) -> None:
    bot = BotProcess(tmp_path, discord, database_url=database_url, openai_base_url=openai_fake.base_url)
    try:
        await bot.start()
        replies = await _stored_replies(bot, openai_fake, 2)
        # Corrections waiting for review, for a curator to approve during the burst.
        for n in range(500, 506):
            pending = {"message_id": str(replies[0]["id"]), "correction": f"Waiting for review {n}."}
            saved = await bot.client.send(slash("correct", pending, user=_member(n)))
            await discord.wait_for(lambda r=saved: _SUCCESS["correction"] in said(r), timeout=30)
        review = await bot.client.send(slash("review", subcommand="next", user=ADMIN_MEMBER))
        await discord.wait_for(lambda: "Review #" in said(review), timeout=30)
        review_message = review.original_message
        assert review_message is not None
        item_ids = await _pending_items(database_url)
        assert len(item_ids) == 6

        # The burst: each member corrects one reply with /correct and presses 👍 under the other.
        sent: list[tuple[str, int, int, dict[str, Any]]] = []  # (kind, member, reply index, payload)
        answered: dict[str, InteractionResult] = {}
        tasks: list[asyncio.Task[None]] = []
        in_flight_at_kill: list[int] = []

        def told(payload: Mapping[str, Any]) -> str:
            """What the member was told: the HTTP answer, or what reached Discord over REST."""
            return said(answered.get(str(payload["id"])) or _seen(payload, discord))

        def acknowledged(kind: str) -> int:
            return sum(_SUCCESS[k] in told(p) for k, _, _, p in sent if k == kind)

        def acknowledgements() -> int:
            return sum(acknowledged(kind) for kind in _SUCCESS)

        async def deliver(payload: dict[str, Any]) -> None:
            try:
                answered[str(payload["id"])] = await bot.client.send(payload)
            except (OSError, aiohttp.ClientError):  # the process died under it
                return

        async def kill_mid_burst() -> None:
            # Once every kind was acknowledged at least once (buttons are answered faster than commands).
            await discord.wait_for(
                lambda: min(acknowledged("correction"), acknowledged("rating")) >= 4 and acknowledged("approval") >= 1,
                timeout=120,
            )
            assert bot.process is not None
            bot.process.kill()  # SIGKILL
            in_flight_at_kill.append(sum(not t.done() for t in tasks))

        killer = asyncio.create_task(kill_mid_burst())
        for n in range(120):
            if in_flight_at_kill:
                break
            member = _member(n)
            target = n % 2
            if n % 5 == 4 and item_ids:
                target = item_ids.pop()
                kind, payload = "approval", button(f"hz.ra:{target}", review_message, user=ADMIN_MEMBER)
            elif n % 3 == 2:
                kind, payload = "rating", button("hz.up", replies[target], user=member)
            else:
                kind = "correction"
                payload = slash(
                    "correct",
                    {"message_id": str(replies[target]["id"]), "correction": f"Corrected by member {n}."},
                    user=member,
                )
            sent.append((kind, n, target, payload))
            tasks.append(asyncio.create_task(deliver(payload)))
            await asyncio.sleep(0.002)
        try:
            await killer
        except TimeoutError:
            pytest.fail(f"the bot acknowledged only {acknowledgements()} interactions of {len(sent)}:\n{bot.output}")
        await asyncio.gather(*tasks)
        assert bot.process is not None
        assert await bot.process.wait() == -signal.SIGKILL
        assert in_flight_at_kill[0] > 0, "the kill came after the burst, not in the middle of it"

        # What the members were told, by the HTTP answer or by what reached Discord before the kill.
        acked_corrections: set[tuple[int, str]] = set()
        acked_ratings: set[tuple[int, int]] = set()
        acked_approvals: set[int] = set()
        for kind, n, target, payload in sent:
            text = told(payload)
            if kind == "approval":
                if _SUCCESS[kind] in text:
                    acked_approvals.add(target)
                continue
            reply_id = int(replies[target]["id"])
            if kind == "correction" and _SUCCESS[kind] in text:
                acked_corrections.add((_user_id(n), f"Corrected by member {n}."))
            elif kind == "rating" and _SUCCESS[kind] in text:
                acked_ratings.add((_user_id(n), reply_id))
        assert acked_corrections
        assert acked_ratings
        assert acked_approvals

        # Restarted on the same database: it serves again, and every acknowledged row is there.
        restarted = BotProcess(
            tmp_path, discord, database_url=database_url, openai_base_url=openai_fake.base_url, key=bot.key
        )
        try:
            await restarted.start()
            after = await restarted.client.send(button("hz.up", replies[0], user=_member(999)))
            assert "Thanks for the 👍" in said(after)
            assert await restarted.stop(signal.SIGTERM, EXIT_BOUND) == 0, restarted.output
        finally:
            await restarted.close()
    finally:
        await bot.close()

    db = Database(database_url)
    try:
        async with db.session() as session:
            corrections = {(c.author_id, c.corrected_text) for c in (await session.scalars(select(Correction))).all()}
            approved = set((await session.scalars(select(ReviewItem.id).where(ReviewItem.status == "approved"))).all())
            thumbs = list((await session.scalars(select(Feedback).where(Feedback.kind == "thumbs"))).all())
            reply_messages = {
                int(m.id): int(m.message_id)
                for m in (await session.scalars(select(BotReply))).all()
                if m.message_id is not None
            }
    finally:
        await db.close()
    ratings = {(f.author_id, reply_messages[f.reply_id]) for f in thumbs if f.reply_id is not None}
    assert acked_corrections <= corrections, acked_corrections - corrections
    assert acked_ratings <= ratings, acked_ratings - ratings
    assert acked_approvals <= approved, acked_approvals - approved
    assert (_user_id(999), int(replies[0]["id"])) in ratings
    assert len(thumbs) == len({(f.author_id, f.reply_id) for f in thumbs})  # nothing doubled by the restart


async def _pending_items(database_url: str) -> list[int]:
    db = Database(database_url)
    try:
        async with db.session() as session:
            return list((await session.scalars(select(ReviewItem.id).where(ReviewItem.status == "pending"))).all())
    finally:
        await db.close()


def _user_id(n: int) -> int:
    return 1_100_000_000_000_010_000 + n


@pytest.mark.asyncio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_lets_the_chat_in_flight_answer_and_exits_cleanly(
    tmp_path: Path, openai_fake: FakeOpenAI, discord: FakeDiscordREST, sig: signal.Signals
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hypotez.db'}"
    bot = BotProcess(tmp_path, discord, database_url=url, openai_base_url=openai_fake.base_url)
    try:
        await bot.start()
        openai_fake.reply_with("A slow but complete answer.")
        openai_fake.delay_next(4.0, path_contains="chat/completions")
        asked = await bot.client.send(slash("chat", {"message": "Take your time?"}))
        async with asyncio.timeout(60):  # the model is being asked when the signal comes
            while not any("chat/completions" in r.path for r in openai_fake.requests):  # noqa: ASYNC110 - the stand-in has no event for it
                await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        status = await bot.stop(sig, EXIT_BOUND)
        took = asyncio.get_running_loop().time() - started
    finally:
        await bot.close()
    assert status == 0, bot.output
    assert took < EXIT_BOUND
    answer = said(asked)
    assert "A slow but complete answer." in answer or "restarting" in answer, answer
    assert "Traceback" not in bot.output, bot.output
    assert "ERROR" not in bot.output, bot.output


#: What a member whose transcription was stopped by a shutdown is told.
_SEND_AGAIN = "The bot restarted before finishing your transcription; send it again."


@pytest.mark.asyncio
@pytest.mark.parametrize("grace_s", [0.0, 60.0], ids=["no-grace", "grace"])
async def test_transcriptions_in_flight_at_shutdown_finish_or_are_answered(
    bot_settings: Settings, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, grace_s: float
) -> None:
    """Three recordings for one whisper worker when the bot stops: within the grace period they finish; past it,
    the running one and the queued ones are each answered "send it again" — none is left without an answer."""
    monkeypatch.setattr("hypotez.app.TRANSCRIPTION_GRACE_S", grace_s)
    settings = bot_settings.model_copy(update={"whisper_workers": 1, "whisper_queue": 8})
    async with running_hypotez(settings, openai_fake) as hz:
        transcriber = hz.app.get(Transcriber)
        results: list[InteractionResult] = []
        for n in range(3):
            upload = hz.rest.host(Attachment(f"meeting{n}.mp3", VOICE_MP3.read_bytes(), content_type="audio/mpeg"))
            results.append(await hz.send(slash("transcribe", {"file": upload}, attachments=[upload]), settle=False))
        async with asyncio.timeout(60):  # all three downloaded and waiting for (or on) the worker
            while transcriber.admitted < 3:  # noqa: ASYNC110 - the transcriber has no event for it
                await asyncio.sleep(0.02)
        await hz.app.close()  # what the shutdown runs: every service's teardown, the transcriber's included
        await hz.settle(60)
        answers = [said(result) for result in results]
        transcribed = [a for a in answers if all(word in a.lower() for word in SENTENCE_WORDS)]
        told_again = [a for a in answers if _SEND_AGAIN in a]
        assert len(transcribed) + len(told_again) == 3, answers  # nobody silently dropped
        if grace_s:
            assert len(transcribed) == 3, answers
        else:
            assert len(told_again) >= 2, answers  # at least the queued ones never started
        with pytest.raises(TranscriberStoppedError, match="send it again"):  # and no new recording is taken
            await transcriber.transcribe(VOICE_MP3.read_bytes())
