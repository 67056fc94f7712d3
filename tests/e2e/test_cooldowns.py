"""Cooldowns: counted in the database, so the limit holds across replicas and resets after its window."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from hypotez.permissions import Caller
from hypotez.plugins._cooldowns import CooldownError, CooldownKind, check_cooldown
from hypotez.storage.repositories import CooldownRepository
from tests.conftest import running_hypotez
from tests.fakes.interactions import GUILD_ID, USER_ID

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.fakes.openai_api import FakeOpenAI

T0 = dt.datetime(2026, 12, 3, 10, 0, 0, tzinfo=dt.UTC)
MEMBER = Caller(user_id=USER_ID, guild_id=GUILD_ID, channel_id=1)


@pytest.mark.asyncio
async def test_the_n_plus_first_use_is_refused_then_allowed_after_the_window(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(update={"cooldown_transcribe_per_minute": 5})
    async with running_hypotez(settings, openai_fake) as hz:
        repo = CooldownRepository(hz.services.db)
        for n in range(5):
            await check_cooldown(CooldownKind.TRANSCRIBE, MEMBER, settings, repo, at=T0 + dt.timedelta(seconds=n))
        with pytest.raises(CooldownError) as refused:
            await check_cooldown(CooldownKind.TRANSCRIBE, MEMBER, settings, repo, at=T0 + dt.timedelta(seconds=48))
        assert "Try again in 12 s" in refused.value.user_message
        await check_cooldown(CooldownKind.TRANSCRIBE, MEMBER, settings, repo, at=T0 + dt.timedelta(seconds=61))
        # another kind and another member count apart
        await check_cooldown(CooldownKind.SAY, MEMBER, settings, repo, at=T0 + dt.timedelta(seconds=48))


@pytest.mark.asyncio
async def test_training_is_limited_per_server(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    settings = bot_settings.model_copy(update={"cooldown_train_per_hour": 2})
    async with running_hypotez(settings, openai_fake) as hz:
        repo = CooldownRepository(hz.services.db)
        for user in (1, 2):
            await check_cooldown(
                CooldownKind.TRAIN, Caller(user_id=user, guild_id=GUILD_ID, channel_id=1), settings, repo, at=T0
            )
        with pytest.raises(CooldownError) as refused:
            await check_cooldown(
                CooldownKind.TRAIN, Caller(user_id=3, guild_id=GUILD_ID, channel_id=1), settings, repo, at=T0
            )
        assert refused.value.server
        assert "Try again in 3600 s" in refused.value.user_message
        await check_cooldown(CooldownKind.TRAIN, Caller(user_id=3, guild_id=2, channel_id=1), settings, repo, at=T0)


@pytest.mark.asyncio
async def test_the_limit_holds_across_two_bots_on_one_database(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    settings = bot_settings.model_copy(update={"cooldown_chat_per_minute": 3})
    async with running_hypotez(settings, openai_fake) as one, running_hypotez(settings, openai_fake) as two:
        first = CooldownRepository(one.services.db)
        second = CooldownRepository(two.services.db)
        await check_cooldown(CooldownKind.CHAT, MEMBER, settings, first, at=T0)
        await check_cooldown(CooldownKind.CHAT, MEMBER, settings, second, at=T0 + dt.timedelta(seconds=1))
        await check_cooldown(CooldownKind.CHAT, MEMBER, settings, first, at=T0 + dt.timedelta(seconds=2))
        with pytest.raises(CooldownError, match=r"Try again in 57 s"):
            await check_cooldown(CooldownKind.CHAT, MEMBER, settings, second, at=T0 + dt.timedelta(seconds=3))


@pytest.mark.asyncio
async def test_the_repository_counts_atomically(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    async with running_hypotez(bot_settings, openai_fake) as hz:
        repo = CooldownRepository(hz.services.db)
        window = dt.timedelta(minutes=1)
        verdicts = [await repo.hit("k", limit=2, window=window, now=T0) for _ in range(3)]
        assert [v.allowed for v in verdicts] == [True, True, False]
        assert verdicts[2].retry_seconds == 60
        assert (await repo.hit("k", limit=2, window=window, now=T0 + window)).allowed
        assert await repo.prune(older_than=dt.timedelta(hours=1), now=T0 + dt.timedelta(hours=2)) == 1


@pytest.mark.asyncio
async def test_commands_carry_their_cooldowns(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    """/chat, /say, /transcribe and "Transcribe" are limited per member, /train per server; the refusal says when
    to retry."""
    from tests.fakes.interactions import said, slash

    settings = bot_settings.model_copy(update={"cooldown_chat_per_minute": 1, "cooldown_say_per_minute": 1})
    async with running_hypotez(settings, openai_fake) as hz:
        openai_fake.reply_with("Hello!")
        first = await hz.send(slash("chat", {"message": "hi"}))
        assert first.original_message is not None
        assert first.original_message["content"] == "Hello!"
        second = await hz.send(slash("chat", {"message": "hi again"}))
        assert "You have used chat too often just now. Try again in" in said(second)
        assert second.ephemeral
        assert len([r for r in openai_fake.requests if r.path.endswith("/chat/completions")]) == 1
    commands = {c._command_data.name: c for c in hz.app.client.registered_commands if hasattr(c, "_command_data")}
    for name, kind in (
        ("chat", "chat"),
        ("say", "say"),
        ("transcribe", "transcribe"),
        ("Transcribe", "transcribe"),
        ("train", "train"),
    ):
        hooks = [getattr(h, "name", "") for h in commands[name]._command_data.hooks]
        assert f"cooldown_{kind}" in hooks, (name, hooks)
