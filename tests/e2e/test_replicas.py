"""Any process sharing the database answers any component or modal: two bots on one database and one "Discord"
(what a load balancer in front of HTTP replicas does), and a restart in between."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from hypotez.storage.models import Correction, Feedback, TrainingJob
from tests.conftest import running_hypotez
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    CHANNEL_ID,
    DEFAULT_USER,
    button,
    in_other_guild,
    member_payload,
    message_command,
    slash,
    user_installed,
    user_payload,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

OTHER_GUILD_ID = 1_100_000_000_000_000_999


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscordREST]:
    """One Discord for every bot process of a test."""
    async with FakeDiscordREST() as fake:
        yield fake


async def _count(hz: RunningBot, model: type[Any]) -> int:
    async with hz.services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _ids(result: InteractionResult) -> list[str]:
    return [c["custom_id"] for row in result.components for c in row["components"]]


def _message_of(result: InteractionResult) -> dict[str, Any]:
    message = result.original_message
    assert message is not None, result
    return message


@pytest.mark.asyncio
async def test_components_and_modals_answered_by_another_replica_and_after_a_restart(
    bot_settings: Settings, openai_fake: FakeOpenAI, discord: FakeDiscordREST
) -> None:
    async with (
        running_hypotez(bot_settings, openai_fake, rest=discord) as a,
        running_hypotez(bot_settings, openai_fake, rest=discord) as b,
    ):
        openai_fake.reply_with("Lyon.")
        reply_message = _message_of(await a.send(slash("chat", {"message": "Capital of France?"})))

        # The correction box opened on A, submitted to B.
        opened = await a.send(message_command("Correct this reply", reply_message))
        assert opened.modal is not None
        saved = await b.send(opened.modal.submit({"Corrected reply": "Paris."}))
        assert saved.content is not None
        assert "Correction saved" in saved.content
        receipt = _message_of(saved)
        view_id, undo_id = _ids(saved)
        assert await _count(a, Correction) == 1

        # The receipt B sent: View pressed on A.
        viewed = await a.send(button(view_id, receipt))
        assert viewed.content is not None
        assert "Paris." in viewed.content

        # 👎 on B for A's reply; its "Correct it" pressed on A; the box submitted to B again.
        down = await b.send(button("hz.down", reply_message))
        [invite_id] = _ids(down)
        reopened = await a.send(button(invite_id, _message_of(down)))
        assert reopened.modal is not None
        assert reopened.modal.input("Corrected reply").value == "Lyon."
        replaced = await b.send(reopened.modal.submit({"Corrected reply": "Paris, on the Seine."}))
        assert replaced.content is not None
        assert "updated" in replaced.content
        assert await _count(a, Correction) == 1  # the member's second correction replaces the first
        assert await _count(a, Feedback) == 1

        # A job started on A: its status message's buttons pressed on B.
        await seed_corrections(a.services, 12)
        await a.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
        async with a.services.db.session() as session:
            job = (await session.scalars(select(TrainingJob))).one()
        assert job.status_message_id is not None
        status = discord.messages[job.status_message_id]
        refreshed = await b.send(button("hz.jr", status, user=ADMIN_MEMBER))
        await refreshed.wait_for_followups()
        assert any("Job #" in str((c.json or {}).get("content")) for c in refreshed.followups)

    # A restarts (and B is gone): everything sent before still works.
    async with running_hypotez(bot_settings, openai_fake, rest=discord) as restarted:
        viewed = await restarted.send(button(view_id, receipt))
        assert viewed.content is not None
        assert "Paris, on the Seine." in viewed.content
        asked = await restarted.send(button("hz.jc", status, user=ADMIN_MEMBER))  # Cancel asks first
        [confirm, _keep] = [c["custom_id"] for row in asked.components for c in row["components"]]
        assert asked.original_message is not None
        await restarted.send(button(confirm, asked.original_message, user=ADMIN_MEMBER))
        async with restarted.services.db.session() as session:
            job = (await session.scalars(select(TrainingJob))).one()
        assert job.status == "cancelled"
        undone = await restarted.send(button(undo_id, receipt))
        assert undone.response_type == 7  # the receipt itself is updated
        assert "removed" in str(undone.content)
        assert await _count(restarted, Correction) == 12  # only the seeded ones remain
        again = await restarted.send(button(undo_id, receipt))
        assert "removed" in str(again.content)
        assert await _count(restarted, Feedback) == 1  # nothing duplicated along the way


@pytest.mark.asyncio
async def test_ids_from_elsewhere_are_refused(hz: RunningBot) -> None:
    """Every handler checks that what its id names belongs to the caller's server (and, where personal, to the
    caller): a replayed or forged id from another server finds nothing."""
    hz.openai.reply_with("Lyon.")
    reply_message = _message_of(await hz.send(slash("chat", {"message": "Capital of France?"})))
    opened = await hz.send(message_command("Correct this reply", reply_message))
    assert opened.modal is not None

    foreign = await hz.send(in_other_guild(opened.modal.submit({"Corrected reply": "Paris."}), OTHER_GUILD_ID))
    assert foreign.ephemeral
    assert "no longer exists here" in str(foreign.content)
    assert await _count(hz, Correction) == 0

    saved = await hz.send(opened.modal.submit({"Corrected reply": "Paris."}))
    receipt = _message_of(saved)
    view_id, undo_id = _ids(saved)
    for custom_id in (view_id, undo_id, "hz.up", "hz.correct", "hz.correct:" + opened.modal.custom_id.split(":")[1]):
        answer = await hz.send(
            in_other_guild(button(custom_id, receipt if ":" in custom_id else reply_message), OTHER_GUILD_ID)
        )
        assert answer.ephemeral, custom_id
        assert answer.modal is None, custom_id
        assert (
            "removed" in str(answer.content)
            or "not one of my replies" in str(answer.content)
            or "no longer exists" in str(answer.content)
        ), (custom_id, answer.content)

    # Another member of the same server may neither see nor undo someone's correction (curators may).
    bob = member_payload(user_payload(1_100_000_000_000_000_777, "bob"))
    assert "Only its author or a curator" in str((await hz.send(button(view_id, receipt, user=bob))).content)
    assert "Only its author or a curator" in str((await hz.send(button(undo_id, receipt, user=bob))).content)
    assert await _count(hz, Correction) == 1
    curator_view = await hz.send(button(view_id, receipt, user=ADMIN_MEMBER))
    assert "Paris." in str(curator_view.content)

    # Malformed ids: a clear refusal, never a crash or a different row.
    for custom_id in ("hz.cv:١", "hz.cv:", "hz.cu:1:2:3x", "hz.cv:99999999999999999999999", "hz.nope:1"):
        answer = await hz.send(button(custom_id, receipt))
        assert answer.ephemeral, custom_id
        assert "Run the command again" in str(answer.content), (custom_id, answer.content)
    assert await _count(hz, Correction) == 1

    # A job's buttons on a message that is not a job of this server.
    refused = await hz.send(in_other_guild(button("hz.jc", reply_message, user=ADMIN_MEMBER), OTHER_GUILD_ID))
    assert refused.ephemeral
    assert "not a training job's status here" in str(refused.content)


@pytest.mark.asyncio
async def test_a_second_member_of_a_group_dm_rates_the_reply_they_see(hz: RunningBot) -> None:
    """A user-installed app in a group DM: one member asks, another rates the reply there."""
    group_dm = 1_100_000_000_000_000_555
    carol = user_payload(1_100_000_000_000_000_888, "carol")
    hz.openai.reply_with("Four.")
    asked = await hz.send(
        user_installed(slash("chat", {"message": "2 + 2?"}, guild=False), group_dm=group_dm, recipients=[carol])
    )
    reply_message = _message_of(asked)
    assert reply_message["channel_id"] == str(group_dm)
    rated = await hz.send(
        user_installed(
            button("hz.up", reply_message, user=carol, guild=False), group_dm=group_dm, recipients=[DEFAULT_USER]
        )
    )
    assert rated.ephemeral
    assert "👍" in str(rated.content)
    async with hz.services.db.session() as session:
        [thumb] = (await session.scalars(select(Feedback))).all()
    assert thumb.author_id == int(carol["id"])

    # The same message id pressed from another DM is not found: a reply is seen where it was posted.
    elsewhere = await hz.send(
        user_installed(button("hz.up", reply_message, user=carol, guild=False), group_dm=CHANNEL_ID + 7)
    )
    assert "not one of my replies" in str(elsewhere.content)
