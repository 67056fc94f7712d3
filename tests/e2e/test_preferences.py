"""``/preferences``: a member's own default model and private answers, stored in the database and used wherever
they talk with the bot (a model that may not be used in a place is not used there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply
from tests.conftest import running_hypotez
from tests.fakes.interactions import member_payload, said, slash, user_payload

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

BOB = member_payload(user_payload(1_100_000_000_000_000_452, "bob"))


def _asked_models(hz: RunningBot) -> list[str]:
    return [str(r.json["model"]) for r in hz.openai.requests if r.path.endswith("/chat/completions") and r.json]


async def _last_reply(hz: RunningBot) -> BotReply:
    async with hz.services.db.session() as session:
        reply = await session.scalar(select(BotReply).order_by(BotReply.id.desc()).limit(1))
    assert reply is not None
    return reply


@pytest.mark.asyncio
async def test_a_members_model_answers_them_and_no_one_else(hz: RunningBot) -> None:
    hz.openai.reply_with("ok")
    shown = await hz.send(slash("preferences", subcommand="show"))
    assert "the channel's (no choice made)" in said(shown)

    saved = await hz.send(slash("preferences", {"model": "gpt-4.1-mini"}, subcommand="set"))
    assert "Model that answers you: `gpt-4.1-mini`" in said(saved)
    await hz.send(slash("chat", {"message": "hello"}))
    await hz.send(slash("chat", {"message": "hello"}, user=BOB))
    await hz.send(slash("chat", {"message": "this once"}))
    assert _asked_models(hz) == ["gpt-4.1-mini", "gpt-4o-mini", "gpt-4.1-mini"]
    # The command's own option still wins.
    await hz.send(slash("chat", {"message": "hello", "model": "gpt-4o-mini"}))
    assert _asked_models(hz)[-1] == "gpt-4o-mini"

    # In direct messages the same preference applies (the model may be used there).
    await hz.send(slash("chat", {"message": "hi"}, guild=False))
    assert _asked_models(hz)[-1] == "gpt-4.1-mini"

    cleared = await hz.send(slash("preferences", subcommand="clear"))
    assert "cleared" in said(cleared)
    await hz.send(slash("chat", {"message": "hello"}))
    assert _asked_models(hz)[-1] == "gpt-4o-mini"


@pytest.mark.asyncio
async def test_a_model_that_may_not_be_used_cannot_be_chosen(hz: RunningBot) -> None:
    refused = await hz.send(slash("preferences", {"model": "local:someone-elses"}, subcommand="set"))
    assert "is not a model this server can use" in said(refused)
    empty = await hz.send(slash("preferences", subcommand="set"))
    assert "Give `model`, `private` or both" in said(empty)
    shown = await hz.send(slash("preferences", subcommand="show"))
    assert "the channel's (no choice made)" in said(shown)


@pytest.mark.asyncio
async def test_private_answers_by_preference(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    openai_fake.reply_with("between us")
    async with running_hypotez(bot_settings, openai_fake) as hz:
        saved = await hz.send(slash("preferences", {"private": True}, subcommand="set"))
        assert "Private answers to `/chat`: yes" in said(saved)
        answered = await hz.send(slash("chat", {"message": "a secret"}))
        assert answered.ephemeral  # deferred as ephemeral
        assert (await _last_reply(hz)).private is True
        public = await hz.send(slash("chat", {"message": "for all", "private": False}))
        assert not public.ephemeral
        assert (await _last_reply(hz)).private is False
    # Kept in the database: a restarted bot (or another replica) knows it.
    async with running_hypotez(bot_settings, openai_fake) as hz:
        await hz.send(slash("chat", {"message": "still private?"}))
        assert (await _last_reply(hz)).private is True
