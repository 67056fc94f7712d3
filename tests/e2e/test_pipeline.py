"""The bot's plumbing through real interactions: signatures, plugins, the error handler, capability checks."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb
import pytest
from pydantic import SecretStr

from hypotez.app import load_plugins, plugin_modules
from hypotez.errors import StorageError
from hypotez.ml.assistant import Assistant
from hypotez.plugins._components import ComponentRouter
from hypotez.storage.repositories import GuildSettingsRepository
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    DEFAULT_USER,
    GUILD_ID,
    member_payload,
    ping,
    slash,
)
from tests.paths import REPO

README = REPO / "README.md"

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


@pytest.mark.asyncio
async def test_ping_is_answered_and_bad_signatures_are_rejected(hz: RunningBot) -> None:
    pong = await hz.send(ping())
    assert pong.status == 200
    assert pong.response == {"type": 1}

    body = json.dumps(slash("about")).encode()
    timestamp = str(int(time.time()))
    good = hz.offline.client.sign(body, timestamp)
    tampered = ("0" if good[0] != "0" else "1") + good[1:]
    rejected = await hz.offline.client.send_raw(body, tampered, timestamp)
    assert rejected.status == 400
    # A body altered after signing is rejected too, and nothing reached the REST API.
    altered = await hz.offline.client.send_raw(body.replace(b"about", b"abouT"), good, timestamp)
    assert altered.status == 400
    assert hz.rest.calls_to("POST", "/callback") == []


def test_every_plugin_is_discovered() -> None:
    modules = plugin_modules()
    assert "hypotez.plugins.about" in modules
    assert not any(m.rsplit(".", 1)[-1].startswith("_") for m in modules)


@pytest.mark.asyncio
async def test_every_plugin_loads_its_commands(hz: RunningBot) -> None:
    # assemble() loaded every plugin, failing loudly on any error: each plugin module's commands are registered.
    def modules(command: Any) -> set[str]:
        if isinstance(command, lightbulb.Group | lightbulb.SubGroup):
            return {m for sub in command.subcommands.values() for m in modules(sub)}
        return {command.__module__}

    registered = {m for command in hz.app.client.registered_commands for m in modules(command)}
    # A plugin may hold only buttons and forms (🔁 Regenerate): its handlers count.
    registered |= {entry.module for entry in hz.app.get(ComponentRouter).handlers.values()}
    assert set(plugin_modules()) <= registered


@pytest.mark.asyncio
async def test_a_broken_plugin_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import hikari

    monkeypatch.setattr(
        "hypotez.app.plugin_modules", lambda _settings=None: ["hypotez.plugins.about", "hypotez.plugins.nope"]
    )
    bot = hikari.RESTBot("t", "Bot", public_key="00" * 32, banner=None, suppress_optimization_warning=True, logs=None)
    client = lightbulb.client_from_app(bot, sync_commands=False)
    with pytest.raises(ModuleNotFoundError, match=r"hypotez\.plugins\.nope"):
        await load_plugins(client)


@pytest.mark.asyncio
async def test_domain_error_becomes_a_plain_ephemeral_reply(hz: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise StorageError("The database is being upgraded; try again in a minute.")

    monkeypatch.setattr(GuildSettingsRepository, "effective", broken)
    result = await hz.send(slash("about", user=ADMIN_MEMBER))
    assert result.ephemeral
    assert result.content == "The database is being upgraded; try again in a minute."


@pytest.mark.asyncio
async def test_unexpected_error_is_logged_with_a_reference(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("internal detail the user must not see")

    monkeypatch.setattr(GuildSettingsRepository, "effective", broken)
    with caplog.at_level(logging.ERROR, logger="hypotez.app"):
        result = await hz.send(slash("about", user=ADMIN_MEMBER))
    assert result.ephemeral
    assert result.content is not None
    assert "internal detail" not in result.content
    ref = result.content.split("`")[1]
    assert len(ref) == 8
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert logged, "the reference id must be in the log"
    assert logged[0].exc_info is not None
    assert "internal detail the user must not see" in caplog.text


@pytest.mark.asyncio
async def test_capability_check_refuses_and_allows(hz: RunningBot) -> None:
    chatters_role = 1_100_000_000_000_000_777
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"chat": [chatters_role]})

    refused = await hz.send(slash("about", user=member_payload(DEFAULT_USER, roles=[])))
    assert refused.ephemeral
    assert refused.content is not None
    assert "`chat` capability" in refused.content
    assert not refused.embeds

    allowed = await hz.send(slash("about", user=member_payload(DEFAULT_USER, roles=[chatters_role])))
    assert allowed.embeds
    admin = await hz.send(slash("about", user=ADMIN_MEMBER))
    assert admin.embeds


@pytest.mark.asyncio
async def test_readme_commands_table_lists_every_command(hz: RunningBot) -> None:
    readme = README.read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for command in hz.app.client.registered_commands:
        if isinstance(command, lightbulb.Group):
            for sub in command.subcommands:
                assert f"/{command.name} {sub}" in table, f"/{command.name} {sub}"
        elif command._command_data.type is hikari.CommandType.SLASH:
            assert f"`/{command._command_data.name}" in table, command._command_data.name
        else:
            assert f"**{command._command_data.name}**" in table, command._command_data.name


@pytest.mark.asyncio
async def test_shutdown_closes_the_services(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    from tests.conftest import running_hypotez

    async with running_hypotez(bot_settings, openai_fake) as hz:
        app = hz.app
        assert not app.closed
    assert app.closed
    assert app.get(Assistant).backends.default.client.is_closed()  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_gateway_mode_assembles_with_listeners(settings: Settings) -> None:
    """The default mode: a GatewayBot with lightbulb, the component router and the reply listener subscribed."""
    from hypotez.app import assemble, build_bot

    token = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxAbCd.0123456789abcdefghijklmnopqrstuvwxyzAB"  # the shape Discord issues
    settings = settings.model_copy(update={"discord_token": SecretStr(token)})
    bot = build_bot(settings)
    assert isinstance(bot, hikari.GatewayBot)
    assert bot.intents & hikari.Intents.MESSAGE_CONTENT
    app = await assemble(bot, settings, sync_commands=False)
    try:
        assert {"chat", "correct", "train", "dataset"} <= {c._command_data.name for c in app.client.registered_commands}
        listeners = bot.get_listeners(hikari.MessageCreateEvent)
        assert any(getattr(cb, "__name__", "") == "_on_message" for cb in listeners)
        assert any(
            getattr(cb, "__name__", "") == "_on_event" for cb in bot.get_listeners(hikari.InteractionCreateEvent)
        )
        assert bot.get_listeners(hikari.StartedEvent)
        assert bot.get_listeners(hikari.StoppedEvent)
    finally:
        await app.close()


def test_a_text_only_bot_loads_no_voice_plugin() -> None:
    from hypotez.app import VOICE_PLUGINS, plugin_modules
    from hypotez.config import load_settings

    everything = plugin_modules(load_settings(discord_token="t"))
    text_only = plugin_modules(load_settings(discord_token="t", voice_enabled=False))
    assert set(everything) >= VOICE_PLUGINS
    assert not VOICE_PLUGINS & set(text_only)
    assert set(everything) - set(text_only) == VOICE_PLUGINS
