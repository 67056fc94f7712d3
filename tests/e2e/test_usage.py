"""``/usage``: tokens and requests from the stored replies, a member's own or a server's by member, channel and
model; and daily token budgets that refuse once spent and say when they reset."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply
from tests.conftest import running_hypotez
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    USER_ID,
    member_payload,
    said,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

BOB_ID = 1_100_000_000_000_000_451
BOB = member_payload(user_payload(BOB_ID, "bob"))


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _tokens(replies: list[BotReply], author: int | None = None) -> int:
    return sum(
        (r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in replies if author is None or r.author_id == author
    )


def _embed(result: Any) -> dict[str, Any]:
    [embed] = result.data["embeds"]
    return embed


def _field(embed: dict[str, Any], name: str) -> str:
    return next(f["value"] for f in embed["fields"] if f["name"] == name)


@pytest.mark.asyncio
async def test_usage_shows_a_members_own_use_and_the_servers_to_its_administrators(hz: RunningBot) -> None:
    hz.openai.reply_with("An answer of several words.")
    for text in ("one", "two", "three"):
        await hz.send(slash("chat", {"message": text}))
    await hz.send(slash("chat", {"message": "bob asks something longer than the others did"}, user=BOB))
    replies = await _replies(hz)
    assert len(replies) == 4
    mine, bobs = _tokens(replies, USER_ID), _tokens(replies, BOB_ID)
    assert mine > 0
    assert bobs > 0

    own = _embed(await hz.send(slash("usage")))
    assert "Your use of the model in this server, last 7 days" in own["title"]
    assert f"**{mine:,}** tokens in **3** requests" in own["description"]
    assert f"gpt-4o-mini: **{mine:,}** tokens · 3 requests" in _field(own, "By model")

    refused = await hz.send(slash("usage", {"scope": "server"}))
    assert "You need the `admin` capability" in said(refused)

    server = _embed(await hz.send(slash("usage", {"scope": "server", "days": 1}, user=ADMIN_MEMBER)))
    assert "This server's use of the model, last 1 day" in server["title"]
    assert f"**{mine + bobs:,}** tokens in **4** requests" in server["description"]
    members = _field(server, "By member").splitlines()
    expected = sorted([(mine, USER_ID, 3), (bobs, BOB_ID, 1)], reverse=True)
    assert members == [f"<@{who}>: **{t:,}** tokens · {n} requests" for t, who, n in expected]

    # Older replies fall outside the window.
    async with hz.services.db.session() as session, session.begin():
        for reply in (await session.scalars(select(BotReply).where(BotReply.author_id == BOB_ID))).all():
            reply.created_at -= dt.timedelta(days=3)
    server = _embed(await hz.send(slash("usage", {"scope": "server", "days": 1}, user=ADMIN_MEMBER)))
    assert f"**{mine:,}** tokens in **3** requests" in server["description"]


@pytest.mark.asyncio
async def test_usage_in_direct_messages_is_the_members_own(hz: RunningBot) -> None:
    hz.openai.reply_with("Hello there.")
    await hz.send(slash("chat", {"message": "hi"}, guild=False))
    replies = await _replies(hz)
    own = _embed(await hz.send(slash("usage", guild=False)))
    assert "in direct messages" in own["title"]
    assert f"**{_tokens(replies):,}** tokens in **1** requests" in own["description"]
    refused = await hz.send(slash("usage", {"scope": "server"}, guild=False))
    assert "here you can see your own" in said(refused)


@pytest.mark.asyncio
async def test_a_spent_daily_budget_refuses_and_says_when_it_resets(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    openai_fake.reply_with("A reply that costs tokens.")
    settings = bot_settings.model_copy(update={"chat_daily_tokens_per_member": 5})
    async with running_hypotez(settings, openai_fake) as hz:
        first = await hz.send(slash("chat", {"message": "first question"}))
        assert first.original_message is not None
        assert first.original_message["content"] == "A reply that costs tokens."
        spent = _tokens(await _replies(hz))
        assert spent >= 5  # the fake's usage: one request crosses the budget
        refused = await hz.send(slash("chat", {"message": "second question"}))
        text = said(refused)
        assert "You have used today's budget of 5 tokens" in text
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        assert f"<t:{int(midnight.timestamp())}:R>" in text
        assert len(await _replies(hz)) == 1  # nothing was asked of the model
        # Another member still has their own budget.
        other = await hz.send(slash("chat", {"message": "my turn"}, user=BOB))
        assert other.original_message is not None
        assert other.original_message["content"] == "A reply that costs tokens."
        usage = _embed(await hz.send(slash("usage")))
        assert "You: 0 of 5 tokens left today" in _field(usage, "Daily budgets")


@pytest.mark.asyncio
async def test_a_servers_budget_is_shared_by_its_members(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with("A reply that costs tokens.")
    settings = bot_settings.model_copy(update={"chat_daily_tokens_per_server": 5})
    async with running_hypotez(settings, openai_fake) as hz:
        await hz.send(slash("chat", {"message": "first question"}))
        refused = await hz.send(slash("chat", {"message": "another"}, user=BOB))
        assert "This server has used today's budget of 5 tokens" in said(refused)
        # Direct messages are not the server's.
        dm = await hz.send(slash("chat", {"message": "in private"}, guild=False))
        assert dm.original_message is not None
        assert dm.original_message["content"] == "A reply that costs tokens."
