"""Every command, component and modal declares what it needs: a capability checked on the server, and the
Discord-side metadata (where it is offered, who sees it by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hikari
import lightbulb
import pytest
from lightbulb.localization import localization_unsupported

from hypotez.keys import Key
from hypotez.plugins._components import ComponentRouter

if TYPE_CHECKING:
    from tests.conftest import RunningBot

#: Commands about one server's data or settings: offered in servers only.
SERVER_ONLY = {
    "admin",
    "arena",
    "archive",
    "audit",
    "dataset",
    "getfile",
    "jobs",
    "prompt",
    "test",
    "review",
    "train",
    "vocabulary",
    "voice",
}
#: Of those, the ones for staff: hidden from members without Administrator until the server changes that.
STAFF = {"admin", "archive", "audit", "dataset", "getfile", "jobs", "test", "train"}


def _leaves(command: Any) -> list[Any]:
    """The invocable commands under a registered command or group."""
    if isinstance(command, lightbulb.Group | lightbulb.SubGroup):
        found: list[Any] = []
        for sub in command.subcommands.values():
            found += _leaves(sub)
        return found
    return [command]


def _capability_hooks(command: Any) -> list[str]:
    return [hook.name for hook in command._command_data.hooks if hook.name.startswith("require_")]


@pytest.mark.asyncio
async def test_every_command_declares_a_capability_and_where_it_is_offered(hz: RunningBot) -> None:
    registered = list(hz.app.client.registered_commands)
    assert len(registered) >= 14
    for command in registered:
        data = command if isinstance(command, lightbulb.Group) else command._command_data
        name = data.name
        for leaf in _leaves(command):
            assert _capability_hooks(leaf), f"{leaf._command_data.qualified_name} checks no capability"
        assert data.contexts is not hikari.UNDEFINED, name
        assert data.integration_types is not hikari.UNDEFINED, name
        contexts = set(data.contexts)
        if name in SERVER_ONLY:
            assert contexts == {hikari.ApplicationContextType.GUILD}, name
            assert set(data.integration_types) == {hikari.ApplicationIntegrationType.GUILD_INSTALL}, name
        else:
            assert hikari.ApplicationContextType.PRIVATE_CHANNEL in contexts, name
            assert hikari.ApplicationIntegrationType.USER_INSTALL in set(data.integration_types), name
        if name in STAFF:
            assert data.default_member_permissions == hikari.Permissions.ADMINISTRATOR, name
        else:
            assert data.default_member_permissions is hikari.UNDEFINED, name


@pytest.mark.asyncio
async def test_privacy_is_offered_everywhere_and_its_administrator_variant_checks_the_server(hz: RunningBot) -> None:
    """A member's own export and forget-me work wherever they talk with the bot; ``forget`` (a member of the
    server, by its administrators) is checked for the server and ``admin`` on the server side."""
    [group] = [c for c in hz.app.client.registered_commands if isinstance(c, lightbulb.Group) and c.name == "privacy"]
    assert group.contexts is not hikari.UNDEFINED
    assert hikari.ApplicationContextType.BOT_DM in set(group.contexts)
    hooks = {name: _capability_hooks(sub) for name, sub in group.subcommands.items()}
    assert hooks == {
        "forget-me": ["require_chat"],
        "export": ["require_chat"],
        "forget": ["require_admin_in_server"],
    }


@pytest.mark.asyncio
async def test_every_custom_id_prefix_has_one_handler_with_a_capability(hz: RunningBot) -> None:
    handlers = hz.app.get(ComponentRouter).handlers
    assert set(handlers) == set(Key)
    for key, entry in handlers.items():
        assert entry.capability is not None, key
        assert entry.arity, key


@pytest.mark.asyncio
async def test_declared_metadata_reaches_discord(hz: RunningBot) -> None:
    """What the command sync would send: contexts, integration types, default member permissions."""
    by_name = {}
    for command in hz.app.client.registered_commands:
        data = command if isinstance(command, lightbulb.Group) else command._command_data
        built = await data.as_command_builder(hikari.Locale.EN_US, localization_unsupported)
        by_name[built.name] = built.build(hz.app.bot.entity_factory)
    assert by_name["train"]["contexts"] == [hikari.ApplicationContextType.GUILD]
    assert int(by_name["train"]["default_member_permissions"]) == int(hikari.Permissions.ADMINISTRATOR)
    assert list(by_name["chat"]["integration_types"]) == [0, 1]
    assert by_name["chat"].get("default_member_permissions") in {None, hikari.UNDEFINED}
