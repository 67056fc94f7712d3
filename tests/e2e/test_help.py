"""``/help``: what hypotez does, the commands the caller may use where they ask (read from the registered commands,
so none is missing), the first steps for administrators, and one command in detail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from hypotez.permissions import Caller
from hypotez.plugins.help import commands_of, usable
from tests.fakes.interactions import ADMIN_MEMBER, GUILD_ID, USER_ID, autocomplete, said, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot


def _text(result: Any) -> str:
    """Every embed's title, description and fields, as one text."""
    parts: list[str] = []
    for embed in result.data.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}\n{f['value']}" for f in embed.get("fields") or []]
    return "\n".join(parts)


def _listed(text: str) -> set[str]:
    """The slash commands a help text lists (``/name sub`` at the start of a line)."""
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("`/") and "` — " in line:
            found.add(line[2 : line.index("` — ")])
    return found


@pytest.mark.asyncio
async def test_help_lists_exactly_the_commands_a_member_may_use_here(hz: RunningBot) -> None:
    member = _text(await hz.send(slash("help")))
    assert "trains the model it talks with" in member
    listed = _listed(member)
    assert {"chat", "correct", "help", "usage", "preferences set"} <= listed
    assert not listed & {"train", "admin grant", "dataset build", "audit"}
    assert "First steps for administrators" not in member
    # Exactly the slash commands the member may use in a server, none missing, none extra.
    commands = commands_of(hz.app.client)
    caller = Caller(user_id=USER_ID, guild_id=GUILD_ID, channel_id=1)
    expected = {c.name for c in usable(commands, caller) if c.kind.name == "SLASH"}
    assert listed == expected
    assert "**Correct this reply** (message menu)" in member

    admin = _text(await hz.send(slash("help", user=ADMIN_MEMBER)))
    assert {"train", "admin grant", "dataset build", "review next", "jobs status"} <= _listed(admin)
    assert "First steps for administrators" in admin
    assert "`/review settings`" in admin
    admin_caller = Caller(user_id=USER_ID, guild_id=GUILD_ID, channel_id=1, is_admin=True)
    assert _listed(admin) == {c.name for c in usable(commands, admin_caller) if c.kind.name == "SLASH"}
    assert "…" not in admin  # nothing was cut


@pytest.mark.asyncio
async def test_help_in_direct_messages_leaves_out_server_commands(hz: RunningBot) -> None:
    text = _text(await hz.send(slash("help", guild=False)))
    listed = _listed(text)
    assert "chat" in listed
    assert not listed & {"review next", "dataset build", "arena start", "vocabulary show"}
    assert "First steps" not in text
    # This test bot runs on HTTP interactions: the help says what that means.
    assert "HTTP interactions" in text


@pytest.mark.asyncio
async def test_help_explains_one_command_and_hides_those_the_caller_cannot_use(hz: RunningBot) -> None:
    refused = await hz.send(slash("help", {"command": "train"}))
    assert "There is no command `/train` that you can use here" in said(refused)
    shown = _text(await hz.send(slash("help", {"command": "/train"}, user=ADMIN_MEMBER)))
    assert "Needs the `train` capability; works in servers." in shown
    assert "`dataset` (optional) — Dataset to train on" in shown
    assert "`/jobs`" in shown  # what to read next
    chat = _text(await hz.send(slash("help", {"command": "chat"})))
    assert "`message` — What to say" in chat
    assert "servers and direct messages" in chat


@pytest.mark.asyncio
async def test_help_autocomplete_offers_only_usable_commands(hz: RunningBot) -> None:
    member = await hz.send(autocomplete("help", {"command": "tr"}, focused="command"))
    names = [c["value"] for c in member.choices]
    assert "transcribe" in names
    assert "train" not in names
    admin = await hz.send(autocomplete("help", {"command": "tr"}, focused="command", user=ADMIN_MEMBER))
    assert "train" in [c["value"] for c in admin.choices]
