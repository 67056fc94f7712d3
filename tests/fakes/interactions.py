"""Interaction payloads shaped like Discord's, and a client that signs and POSTs them to a RESTBot.

The builders return plain dicts in the documented wire format, with every field hikari 2.6 requires
(``authorizing_integration_owners``, ``context``, ``attachment_size_limit``, ``app_permissions``, a ``channel``
object, ``locale``, ``version``, ``member`` or ``user``, numeric ``id`` on every component).

`InteractionClient.send` signs a payload with an Ed25519 key exactly as Discord does and returns an
`InteractionResult` that reads the initial response from wherever the bot put it: the HTTP body (miru,
PING) or the ``POST /interactions/{id}/{token}/callback`` recorded on the `FakeDiscordREST` (lightbulb, which
answers over REST and returns 204 from the interaction server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import json
import secrets
import time
import zlib
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from nacl.signing import SigningKey

    from tests.fakes.discord_rest import FakeDiscordREST, RecordedCall, RecordedFile

__all__ = [
    "ADMINISTRATOR",
    "ADMIN_MEMBER",
    "ADMIN_ROLE_ID",
    "ADMIN_USER",
    "ADMIN_USER_ID",
    "ALL_PERMISSIONS",
    "APP_ID",
    "BOT_USER",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "DEFAULT_MEMBER",
    "DEFAULT_PERMISSIONS",
    "DEFAULT_USER",
    "EPHEMERAL",
    "GUILD_ID",
    "INITIAL_RESPONSE_DEADLINE",
    "LOADING",
    "USER_ID",
    "USER_INSTALL_PERMISSIONS",
    "Attachment",
    "ChannelRef",
    "DiscordWouldRejectError",
    "InteractionClient",
    "InteractionResult",
    "ModalView",
    "RoleRef",
    "TextInputView",
    "UserRef",
    "action_row",
    "assign_component_ids",
    "autocomplete",
    "button",
    "button_component",
    "in_other_guild",
    "iso_timestamp",
    "member_payload",
    "message_command",
    "message_object",
    "message_payload",
    "message_problems",
    "modal_submit",
    "next_snowflake",
    "ping",
    "response_problems",
    "select",
    "slash",
    "user_command",
    "user_installed",
    "user_payload",
]

#: Seconds Discord waits for an interaction's initial response (the REST stand-in enforces the same).
INITIAL_RESPONSE_DEADLINE = 3.0

# --------------------------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------------------------

APP_ID = 1_100_000_000_000_000_001
BOT_USER_ID = APP_ID  # a bot user's id is its application's id
GUILD_ID = 1_100_000_000_000_000_100
CHANNEL_ID = 1_100_000_000_000_000_200
USER_ID = 1_100_000_000_000_000_300
ADMIN_USER_ID = 1_100_000_000_000_000_301
ADMIN_ROLE_ID = 1_100_000_000_000_000_400

EPHEMERAL = 1 << 6
LOADING = 1 << 7
ADMINISTRATOR = 1 << 3
#: Everything a plain member usually has: view channel, send messages, embed links, attach files,
#: read history, use application commands, etc.
DEFAULT_PERMISSIONS = (
    (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 6) | (1 << 31) | (1 << 38) | (1 << 35)
)
ALL_PERMISSIONS = (1 << 51) - 1

_DISCORD_EPOCH_MS = 1_420_070_400_000
_ids = itertools.count(1)
_last_snowflake = 0


def next_snowflake() -> int:
    """A fresh snowflake: time-based like Discord's, and strictly increasing within the process."""
    global _last_snowflake  # noqa: PLW0603 - one process-wide counter keeps every id unique and ordered
    candidate = ((int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22) | (next(_ids) & 0xFFF)
    _last_snowflake = max(candidate, _last_snowflake + 1)
    return _last_snowflake


def iso_timestamp(when: datetime.datetime | None = None) -> str:
    """An ISO-8601 timestamp as Discord writes them (``2024-05-01T12:00:00.000000+00:00``)."""
    return (when or datetime.datetime.now(datetime.UTC)).isoformat(timespec="microseconds")


def user_payload(user_id: int, username: str, *, bot: bool = False, global_name: str | None = None) -> dict[str, Any]:
    """A Discord user object."""
    user: dict[str, Any] = {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": global_name if global_name is not None else username.capitalize(),
        "avatar": None,
        "public_flags": 0,
    }
    if bot:
        user["bot"] = True
    return user


def member_payload(
    user: Mapping[str, Any],
    *,
    permissions: int = DEFAULT_PERMISSIONS,
    roles: Sequence[int] = (),
    nick: str | None = None,
) -> dict[str, Any]:
    """An interaction guild member object (``permissions`` is the member's total permissions in the channel)."""
    return {
        "user": dict(user),
        "nick": nick,
        "avatar": None,
        "roles": [str(role) for role in roles],
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
        "permissions": str(permissions),
    }


BOT_USER: dict[str, Any] = user_payload(BOT_USER_ID, "hypotez", bot=True, global_name="Hypotez")
DEFAULT_USER: dict[str, Any] = user_payload(USER_ID, "alice")
DEFAULT_MEMBER: dict[str, Any] = member_payload(DEFAULT_USER)
ADMIN_USER: dict[str, Any] = user_payload(ADMIN_USER_ID, "root")
ADMIN_MEMBER: dict[str, Any] = member_payload(
    ADMIN_USER, permissions=ALL_PERMISSIONS | ADMINISTRATOR, roles=[ADMIN_ROLE_ID]
)

# --------------------------------------------------------------------------------------------------------------
# Option values that are not plain Python scalars
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Attachment:
    """An uploaded file as an option value (type 11) or on a message.

    ``url`` defaults to a cdn.discordapp.com address that nothing serves; use
    `FakeDiscordREST.host(attachment)` for a copy whose ``url`` the fake really serves, so code that downloads
    attachments works offline.
    """

    filename: str
    content: bytes = b""
    content_type: str = "application/octet-stream"
    id: int = dataclasses.field(default_factory=next_snowflake)
    url: str | None = None
    duration_secs: float | None = None
    waveform: str | None = None
    channel_id: int = CHANNEL_ID

    @property
    def size(self) -> int:
        return len(self.content)

    def to_payload(self) -> dict[str, Any]:
        """The Discord attachment object."""
        url = self.url or f"https://cdn.discordapp.com/attachments/{self.channel_id}/{self.id}/{self.filename}"
        payload: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": url,
            "proxy_url": url,
            "content_type": self.content_type,
        }
        if self.duration_secs is not None:
            payload["duration_secs"] = self.duration_secs
        if self.waveform is not None:
            payload["waveform"] = self.waveform
        return payload


@dataclasses.dataclass(frozen=True)
class UserRef:
    """A user (type 6) option value; with ``member`` set it resolves as a guild member too."""

    user: Mapping[str, Any]
    member: Mapping[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.user["id"])


@dataclasses.dataclass(frozen=True)
class ChannelRef:
    """A channel (type 7) option value."""

    id: int
    name: str = "general"
    type: int = 0
    permissions: int = ALL_PERMISSIONS

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "type": self.type,
            "permissions": str(self.permissions),
            "parent_id": None,
        }


@dataclasses.dataclass(frozen=True)
class RoleRef:
    """A role (type 8) option value."""

    id: int
    name: str = "role"
    permissions: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 1,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }


OptionValue = str | bool | int | float | Attachment | UserRef | ChannelRef | RoleRef

# --------------------------------------------------------------------------------------------------------------
# Messages and components
# --------------------------------------------------------------------------------------------------------------


def assign_component_ids(components: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Deep-copy ``components`` and give every component without one a numeric ``id``, as Discord does.

    Discord numbers components in document order starting at 1; hikari 2.6 reads ``id`` on every component.
    """
    if not components:
        return []
    copied: list[dict[str, Any]] = json.loads(json.dumps(list(components)))
    used: set[int] = set()

    def collect(items: list[dict[str, Any]]) -> None:
        for item in items:
            if isinstance(item.get("id"), int):
                used.add(item["id"])
            collect(item.get("components") or [])
            if isinstance(item.get("accessory"), dict):
                collect([item["accessory"]])
            if isinstance(item.get("component"), dict):
                collect([item["component"]])

    counter = itertools.count(1)

    def fill(items: list[dict[str, Any]]) -> None:
        for item in items:
            if not isinstance(item.get("id"), int):
                item["id"] = next(n for n in counter if n not in used)
            fill(item.get("components") or [])
            if isinstance(item.get("accessory"), dict):
                fill([item["accessory"]])
            if isinstance(item.get("component"), dict):
                fill([item["component"]])

    collect(copied)
    fill(copied)
    return copied


def button_component(custom_id: str, label: str = "Press", *, style: int = 1, disabled: bool = False) -> dict[str, Any]:
    """A button component (type 2)."""
    return {"type": 2, "style": style, "label": label, "custom_id": custom_id, "disabled": disabled}


def action_row(*components: Mapping[str, Any]) -> dict[str, Any]:
    """An action row (type 1) holding ``components``."""
    return {"type": 1, "components": [dict(component) for component in components]}


def message_object(
    *,
    content: str,
    author: Mapping[str, Any],
    message_id: int | None = None,
    channel_id: int = CHANNEL_ID,
    guild_id: int | None = GUILD_ID,
    components: Sequence[Mapping[str, Any]] | None = None,
    embeds: Sequence[Mapping[str, Any]] | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    flags: int = 0,
    message_type: int = 0,
    application_id: int | None = None,
    webhook_id: int | None = None,
    interaction_metadata: Mapping[str, Any] | None = None,
    referenced_message: Mapping[str, Any] | None = None,
    mentions: Sequence[Mapping[str, Any]] | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A complete Discord message object, as ``entity_factory.deserialize_message`` needs it."""
    message: dict[str, Any] = {
        "id": str(message_id if message_id is not None else next_snowflake()),
        "channel_id": str(channel_id),
        "author": dict(author),
        "content": content,
        "timestamp": timestamp or iso_timestamp(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [dict(mention) for mention in mentions or ()],
        "mention_roles": [],
        "attachments": [dict(attachment) for attachment in attachments or ()],
        "embeds": [dict(embed) for embed in embeds or ()],
        "pinned": False,
        "type": message_type,
        "flags": flags,
        "components": assign_component_ids(components),
    }
    if guild_id is not None:
        message["guild_id"] = str(guild_id)
    if application_id is not None:
        message["application_id"] = str(application_id)
    if webhook_id is not None:
        message["webhook_id"] = str(webhook_id)
    if interaction_metadata is not None:
        message["interaction_metadata"] = dict(interaction_metadata)
    if referenced_message is not None:
        message["referenced_message"] = dict(referenced_message)
        message["message_reference"] = {
            "type": 0,
            "message_id": referenced_message["id"],
            "channel_id": referenced_message["channel_id"],
            **({"guild_id": str(guild_id)} if guild_id is not None else {}),
        }
        message["type"] = 19 if message_type == 0 else message_type
    return message


def message_payload(
    content: str,
    *,
    author_bot: bool,
    message_id: int | None = None,
    channel_id: int = CHANNEL_ID,
    components: Sequence[Mapping[str, Any]] | None = None,
    referenced_message: Mapping[str, Any] | None = None,
    attachments: Sequence[Attachment] = (),
    author: Mapping[str, Any] | None = None,
    flags: int = 0,
    guild: bool = True,
) -> dict[str, Any]:
    """A message to use as a context-menu target, a component's message or a reply target.

    ``author_bot`` picks `BOT_USER` or `DEFAULT_USER` unless ``author`` is given. Voice messages: pass an
    `Attachment` with ``duration_secs``/``waveform`` and ``flags=1 << 13``.
    """
    chosen_author = author if author is not None else (BOT_USER if author_bot else DEFAULT_USER)
    return message_object(
        content=content,
        author=chosen_author,
        message_id=message_id,
        channel_id=channel_id,
        guild_id=GUILD_ID if guild else None,
        components=components,
        attachments=[attachment.to_payload() for attachment in attachments],
        referenced_message=referenced_message,
        flags=flags,
    )


# --------------------------------------------------------------------------------------------------------------
# Interaction payloads
# --------------------------------------------------------------------------------------------------------------


def _identity(user: Mapping[str, Any] | None, *, guild: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(member, user) for ``user`` given as a member payload, a user payload, or None for the default."""
    if user is None:
        user = DEFAULT_MEMBER if guild else DEFAULT_USER
    if "user" in user:  # a member payload
        member = dict(user)
        plain_user = dict(user["user"])
    else:
        plain_user = dict(user)
        member = member_payload(plain_user)
    return (member if guild else None), plain_user


def _base(
    interaction_type: int,
    *,
    user: Mapping[str, Any] | None,
    guild: bool,
    channel_id: int = CHANNEL_ID,
    locale: str = "en-US",
) -> dict[str, Any]:
    member, plain_user = _identity(user, guild=guild)
    channel: dict[str, Any] = {
        "id": str(channel_id),
        "type": 0 if guild else 1,
        "permissions": member["permissions"] if member else str(DEFAULT_PERMISSIONS),
        "flags": 0,
    }
    payload: dict[str, Any] = {
        "id": str(next_snowflake()),
        "application_id": str(APP_ID),
        "type": interaction_type,
        "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48),
        "version": 1,
        "locale": locale,
        "app_permissions": str(ALL_PERMISSIONS),
        "channel_id": str(channel_id),
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if guild:
        channel.update(guild_id=str(GUILD_ID), name="general", position=0, parent_id=None, nsfw=False, topic=None)
        payload.update(
            guild_id=str(GUILD_ID),
            guild={"id": str(GUILD_ID), "locale": "en-US", "features": []},
            guild_locale="en-US",
            member=member,
            authorizing_integration_owners={"0": str(GUILD_ID)},
            context=0,
        )
    else:
        channel["recipients"] = [plain_user]
        payload.update(user=plain_user, authorizing_integration_owners={"0": "0"}, context=1)
    payload["channel"] = channel
    return payload


def _command_id(name: str) -> str:
    # Stable per command name, like a registered command's id.
    return str(1_200_000_000_000_000_000 + zlib.crc32(name.encode()))


def _option_type(value: OptionValue) -> int:
    # bool first: bool is a subclass of int.
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, str):
        return 3
    if isinstance(value, Attachment):
        return 11
    if isinstance(value, UserRef):
        return 6
    if isinstance(value, ChannelRef):
        return 7
    if isinstance(value, RoleRef):
        return 8
    msg = f"cannot infer a Discord option type for {value!r}"
    raise TypeError(msg)


def _options_and_resolved(
    options: Mapping[str, OptionValue] | None,
    *,
    focused: str | None = None,
    extra_attachments: Sequence[Attachment] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    built: list[dict[str, Any]] = []
    resolved: dict[str, dict[str, Any]] = {}
    for attachment in extra_attachments:
        resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.to_payload()
    for name, value in (options or {}).items():
        option_type = _option_type(value)
        option: dict[str, Any] = {"name": name, "type": option_type}
        if isinstance(value, Attachment):
            option["value"] = str(value.id)
            resolved.setdefault("attachments", {})[str(value.id)] = value.to_payload()
        elif isinstance(value, UserRef):
            option["value"] = value.id
            resolved.setdefault("users", {})[value.id] = dict(value.user)
            if value.member is not None:
                member = {k: v for k, v in value.member.items() if k != "user"}
                resolved.setdefault("members", {})[value.id] = member
        elif isinstance(value, ChannelRef):
            option["value"] = str(value.id)
            resolved.setdefault("channels", {})[str(value.id)] = value.to_payload()
        elif isinstance(value, RoleRef):
            option["value"] = str(value.id)
            resolved.setdefault("roles", {})[str(value.id)] = value.to_payload()
        else:
            option["value"] = value
        if focused is not None and name == focused:
            option["focused"] = True
            # While typing, Discord sends the partial input as a string whatever the option's type.
            if not isinstance(value, str | bool):
                option["value"] = str(option["value"])
        built.append(option)
    return built, resolved


def _nest(options: list[dict[str, Any]], subcommand: str | None, group: str | None) -> list[dict[str, Any]]:
    if group is not None and subcommand is None:
        msg = "a subcommand group needs a subcommand"
        raise ValueError(msg)
    if subcommand is not None:
        options = [{"name": subcommand, "type": 1, "options": options}]
    if group is not None:
        options = [{"name": group, "type": 2, "options": options}]
    return options


def _command_data(
    name: str,
    command_type: int,
    options: list[dict[str, Any]] | None,
    resolved: dict[str, Any],
    command_guild_id: int | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"id": _command_id(name), "name": name, "type": command_type}
    if options is not None:
        data["options"] = options
    if resolved:
        data["resolved"] = resolved
    if command_guild_id is not None:
        data["guild_id"] = str(command_guild_id)
    return data


def ping() -> dict[str, Any]:
    """A PING (type 1); the server must answer ``{"type": 1}``."""
    return {"id": str(next_snowflake()), "application_id": str(APP_ID), "type": 1, "token": "ping", "version": 1}


def slash(
    name: str,
    options: Mapping[str, OptionValue] | None = None,
    *,
    subcommand: str | None = None,
    group: str | None = None,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
    attachments: Sequence[Attachment] = (),
    command_guild_id: int | None = None,
    channel_id: int = CHANNEL_ID,
    locale: str = "en-US",
) -> dict[str, Any]:
    """An APPLICATION_COMMAND (type 2) for the chat-input command ``/name [group] [subcommand] options``.

    Option types come from the Python values: str 3, int 4, bool 5, float 10, `Attachment` 11 (with
    ``data.resolved.attachments``), `UserRef` 6, `ChannelRef` 7, `RoleRef` 8.

    ``user`` is a member payload (`DEFAULT_MEMBER`, `ADMIN_MEMBER`, `member_payload(...)`) or a user payload
    (wrapped as a member with default permissions in guilds). ``guild=False`` makes a bot-DM interaction.

    ``command_guild_id`` sets ``data.guild_id``, which Discord sends for commands *registered to a guild*:
    lightbulb looks commands up by it, so set it only for guild-registered commands (a globally registered
    command sent with it is "unknown" and lightbulb times out after 5 s).
    """
    built, resolved = _options_and_resolved(options, extra_attachments=attachments)
    payload = _base(2, user=user, guild=guild, channel_id=channel_id, locale=locale)
    payload["data"] = _command_data(name, 1, _nest(built, subcommand, group), resolved, command_guild_id)
    return payload


def autocomplete(
    name: str,
    options: Mapping[str, OptionValue],
    focused: str,
    *,
    subcommand: str | None = None,
    group: str | None = None,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
    command_guild_id: int | None = None,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND_AUTOCOMPLETE (type 4) with ``focused`` marked as the option being typed."""
    if focused not in options:
        msg = f"focused option {focused!r} is not among the options"
        raise ValueError(msg)
    built, _ = _options_and_resolved(options, focused=focused)
    payload = _base(4, user=user, guild=guild)
    payload["data"] = _command_data(name, 1, _nest(built, subcommand, group), {}, command_guild_id)
    return payload


def message_command(
    name: str,
    target_message: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
    command_guild_id: int | None = None,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND for a MESSAGE context-menu command (command type 3) on ``target_message``."""
    payload = _base(2, user=user, guild=guild)
    resolved = {"messages": {str(target_message["id"]): dict(target_message)}}
    data = _command_data(name, 3, None, resolved, command_guild_id)
    data["target_id"] = str(target_message["id"])
    payload["data"] = data
    return payload


def user_command(
    name: str,
    target: UserRef,
    *,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
    command_guild_id: int | None = None,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND for a USER context-menu command (command type 2) on ``target``."""
    payload = _base(2, user=user, guild=guild)
    resolved: dict[str, Any] = {"users": {target.id: dict(target.user)}}
    if target.member is not None:
        resolved["members"] = {target.id: {k: v for k, v in target.member.items() if k != "user"}}
    data = _command_data(name, 2, None, resolved, command_guild_id)
    data["target_id"] = target.id
    payload["data"] = data
    return payload


def button(
    custom_id: str,
    message: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
) -> dict[str, Any]:
    """A MESSAGE_COMPONENT (type 3) press of the button ``custom_id`` on ``message``.

    ``message`` is the message carrying the button, e.g. ``rest.messages[id]`` for one the bot sent (the fake
    numbers its components) or a `message_payload` with `action_row(button_component(...))`.
    """
    payload = _base(3, user=user, guild=guild, channel_id=int(message["channel_id"]))
    payload["message"] = {**message, "components": assign_component_ids(message.get("components"))}
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    return payload


def select(
    custom_id: str,
    values: Sequence[str],
    message: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
) -> dict[str, Any]:
    """A MESSAGE_COMPONENT (type 3) choice of ``values`` in the string select ``custom_id`` on ``message``."""
    payload = button(custom_id, message, user=user, guild=guild)
    payload["data"] = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
    return payload


def modal_submit(
    custom_id: str,
    values: Mapping[str, str],
    *,
    message: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
    guild: bool = True,
) -> dict[str, Any]:
    """A MODAL_SUBMIT (type 5) of the modal ``custom_id``; ``values`` maps text-input custom ids to text.

    Discord sends one action row per text input, each with a numeric ``id`` (hikari 2.6 reads it; it
    ignores the newer label components (type 18) in submissions, so this uses action rows). ``message`` is
    the message whose component opened the modal, if one did.
    """
    ids = itertools.count(1)
    rows = [
        {"type": 1, "id": next(ids), "components": [{"type": 4, "id": next(ids), "custom_id": key, "value": value}]}
        for key, value in values.items()
    ]
    payload = _base(5, user=user, guild=guild)
    payload["data"] = {"custom_id": custom_id, "components": rows}
    if message is not None:
        payload["message"] = {**message, "components": assign_component_ids(message.get("components"))}
    return payload


def in_other_guild(payload: Mapping[str, Any], guild_id: int) -> dict[str, Any]:
    """``payload`` as if sent from another server (``guild_id``): what a replayed or forged id looks like."""
    moved: dict[str, Any] = json.loads(json.dumps(payload))
    moved["guild_id"] = str(guild_id)
    moved["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
    moved["channel"]["guild_id"] = str(guild_id)
    moved["authorizing_integration_owners"] = {"0": str(guild_id)}
    return moved


#: What a user-installed app may do where the bot is not a member: no ADMINISTRATOR, no MANAGE_GUILD.
USER_INSTALL_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)


def user_installed(
    payload: Mapping[str, Any],
    *,
    group_dm: int | None = None,
    recipients: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """``payload`` (built with ``guild=False``) as a user-installed app receives it: authorised by the user
    (``authorizing_integration_owners`` key ``"1"``), ``app_permissions`` without ADMINISTRATOR; with
    ``group_dm`` (a channel id) in that group DM (channel type 3, ``context`` 2, its ``recipients``), else in the
    user's DM with the bot (``context`` 1)."""
    moved: dict[str, Any] = json.loads(json.dumps(payload))
    if "member" in moved or "guild_id" in moved:
        msg = "build the payload with guild=False first"
        raise ValueError(msg)
    user = moved["user"]
    moved["authorizing_integration_owners"] = {"1": str(user["id"])}
    moved["app_permissions"] = str(USER_INSTALL_PERMISSIONS)
    if group_dm is None:
        moved["context"] = 1
        return moved
    moved["context"] = 2
    moved["channel_id"] = str(group_dm)
    moved["channel"] = {
        "id": str(group_dm),
        "type": 3,
        "name": None,
        "owner_id": str(user["id"]),
        "icon": None,
        "recipients": [dict(r) for r in recipients] or [dict(user)],
        "permissions": str(USER_INSTALL_PERMISSIONS),
        "flags": 0,
        "last_message_id": None,
    }
    if isinstance(moved.get("message"), dict):
        moved["message"]["channel_id"] = str(group_dm)
    return moved


# --------------------------------------------------------------------------------------------------------------
# What Discord would reject
# --------------------------------------------------------------------------------------------------------------


class DiscordWouldRejectError(AssertionError):
    """The bot answered an interaction in the HTTP body with something Discord would refuse."""


def _component_problems(components: Any, where: str) -> list[str]:
    if components is None:
        return []
    if not isinstance(components, list):
        return [f"{where}: components must be a list, got {type(components).__name__}"]
    problems: list[str] = []
    for index, component in enumerate(components):
        here = f"{where}[{index}]"
        if not isinstance(component, dict):
            problems.append(f"{here}: a component must be an object, got {json.dumps(component)[:120]}")
            continue
        if not isinstance(component.get("type"), int):
            problems.append(f"{here}: component without an integer type")
        problems.extend(_component_problems(component.get("components"), here))
    return problems


def message_problems(data: Mapping[str, Any]) -> list[str]:
    """Limits Discord enforces on message data (create/edit/follow-up, response types 4 and 7)."""
    problems: list[str] = []
    content = data.get("content")
    if content is not None and len(str(content)) > 2000:
        problems.append(f"content is {len(str(content))} characters; Discord allows 2000")
    embeds = data.get("embeds")
    if isinstance(embeds, list) and len(embeds) > 10:
        problems.append(f"{len(embeds)} embeds; Discord allows 10")
    problems.extend(_component_problems(data.get("components"), "components"))
    return problems


def response_problems(response: Any) -> list[str]:
    """Why Discord would reject ``response`` as an interaction's initial response (empty if it would not)."""
    if not isinstance(response, dict) or not isinstance(response.get("type"), int):
        return [f"not an interaction response object: {response!r:.200}"]
    response_type = response["type"]
    if response_type not in {1, 4, 5, 6, 7, 8, 9, 10, 12}:
        return [f"unknown interaction callback type {response_type}"]
    data = response.get("data") or {}
    if not isinstance(data, dict):
        return ["data must be an object"]
    if response_type in {4, 7}:
        return message_problems(data)
    if response_type == 8:
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) > 25:
            return ["autocomplete needs a list of at most 25 choices"]
        return [
            f"choices[{index}] needs a name of 1-100 characters and a value"
            for index, choice in enumerate(choices)
            if not isinstance(choice, dict) or not 1 <= len(str(choice.get("name", ""))) <= 100 or "value" not in choice
        ]
    if response_type == 9:
        problems: list[str] = []
        if not isinstance(data.get("title"), str) or not 1 <= len(data["title"]) <= 45:
            problems.append("a modal needs a title of 1-45 characters")
        if not isinstance(data.get("custom_id"), str) or not 1 <= len(data["custom_id"]) <= 100:
            problems.append("a modal needs a custom_id of 1-100 characters")
        components = data.get("components")
        if not isinstance(components, list) or not 1 <= len(components) <= 5:
            problems.append("a modal needs 1-5 top-level components")
        problems.extend(_component_problems(components, "components"))
        if problems and any("must be an object" in problem for problem in problems):
            problems.append(
                "hint: hikari 2.6.0's InteractionModalBuilder.build() emits each component as [payload, files]; "
                "a modal returned in the HTTP body (miru's ViewContext.respond_with_modal on a RESTBot) hits it"
            )
        return problems
    return []


# --------------------------------------------------------------------------------------------------------------
# Reading responses
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TextInputView:
    """A text input of a modal the bot opened."""

    custom_id: str
    label: str | None
    value: str | None
    style: int
    required: bool
    placeholder: str | None = None
    min_length: int | None = None
    max_length: int | None = None


@dataclasses.dataclass(frozen=True)
class ModalView:
    """A modal (response type 9) the bot opened."""

    custom_id: str
    title: str
    inputs: list[TextInputView]

    def input(self, label: str) -> TextInputView:
        """The text input labelled ``label``."""
        for text_input in self.inputs:
            if text_input.label == label:
                return text_input
        msg = f"no text input labelled {label!r}; labels: {[i.label for i in self.inputs]}"
        raise KeyError(msg)

    @property
    def values(self) -> dict[str, str]:
        """Prefilled values by custom id (empty string where none)."""
        return {text_input.custom_id: text_input.value or "" for text_input in self.inputs}

    def submission(self, by_label: Mapping[str, str] | None = None) -> dict[str, str]:
        """Values to submit by custom id: the prefilled ones, overridden by ``by_label`` (label -> text)."""
        values = self.values
        for label, text in (by_label or {}).items():
            values[self.input(label).custom_id] = text
        return values

    def submit(
        self, by_label: Mapping[str, str] | None = None, *, user: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A `modal_submit` payload for this modal."""
        return modal_submit(self.custom_id, self.submission(by_label), user=user)


def _parse_modal(data: Mapping[str, Any]) -> ModalView:
    inputs: list[TextInputView] = []

    def visit(component: Any, label: str | None) -> None:
        if not isinstance(component, dict):
            return
        kind = component.get("type")
        if kind == 4:
            inputs.append(
                TextInputView(
                    custom_id=component["custom_id"],
                    label=component.get("label", label),
                    value=component.get("value"),
                    style=component.get("style", 1),
                    required=component.get("required", True),
                    placeholder=component.get("placeholder"),
                    min_length=component.get("min_length"),
                    max_length=component.get("max_length"),
                )
            )
        elif kind == 18 and isinstance(component.get("component"), dict):  # label component
            visit(component["component"], component.get("label"))
        for child in component.get("components") or ():
            visit(child, label)

    for top in data.get("components") or ():
        visit(top, None)
    return ModalView(custom_id=data["custom_id"], title=data["title"], inputs=inputs)


class InteractionResult:
    """What the bot did with one interaction: HTTP status, initial response, follow-ups."""

    def __init__(
        self,
        *,
        status: int,
        body: bytes,
        content_type: str,
        body_json: Any,
        body_files: list[RecordedFile],
        payload: Mapping[str, Any] | None,
        rest: FakeDiscordREST,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.body_json = body_json
        self.body_files = body_files
        self.payload = payload
        self._rest = rest

    def __repr__(self) -> str:
        return f"InteractionResult(status={self.status}, response={self.response!r})"

    @property
    def interaction_id(self) -> str | None:
        return None if self.payload is None else str(self.payload["id"])

    @property
    def token(self) -> str | None:
        return None if self.payload is None else str(self.payload["token"])

    @property
    def answered_in_body(self) -> bool:
        """True when the initial response came in the HTTP body (miru, PING) rather than over REST."""
        return isinstance(self.body_json, dict) and "type" in self.body_json

    @property
    def callback_call(self) -> RecordedCall | None:
        """The successful ``POST /interactions/{id}/{token}/callback`` for this interaction, if any."""
        if self.payload is None:
            return None
        path = f"/interactions/{self.interaction_id}/{self.token}/callback"
        for call in self._rest.calls:
            if call.method == "POST" and call.path == path and call.status < 300:
                return call
        return None

    @property
    def response(self) -> dict[str, Any] | None:
        """The initial response ``{"type": ..., "data": {...}}``, from the body or the REST callback."""
        if self.answered_in_body:
            return self.body_json
        call = self.callback_call
        if call is not None and isinstance(call.json, dict):
            return call.json
        return None

    @property
    def response_type(self) -> int | None:
        response = self.response
        return None if response is None else int(response["type"])

    @property
    def data(self) -> dict[str, Any]:
        """The response's data; for a deferred response (types 5 and 6) that has since been edited, the message as
        the member now sees it (a loaded machine may defer any command: tests read the answer either way)."""
        response = self.response
        data = dict(response.get("data") or {}) if response else {}
        if response is not None and int(response["type"]) in {5, 6}:
            shown = self.original_message
            if shown is not None and (shown.get("content") or shown.get("embeds") or shown.get("components")):
                flags = int(data.get("flags") or 0) | int(shown.get("flags") or 0)
                return {**data, **shown, "flags": flags}
        return data

    @property
    def content(self) -> str | None:
        return self.data.get("content")

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.data.get("components") or [])

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.data.get("embeds") or [])

    @property
    def attachments(self) -> list[dict[str, Any]]:
        """The ``attachments`` metadata of the response (``{"id": n, "filename": ...}``)."""
        return list(self.data.get("attachments") or [])

    @property
    def files(self) -> list[RecordedFile]:
        """Files uploaded with the initial response (multipart body or multipart callback)."""
        if self.answered_in_body:
            return list(self.body_files)
        call = self.callback_call
        return list(call.files) if call is not None else []

    @property
    def choices(self) -> list[dict[str, Any]]:
        """Autocomplete choices (response type 8)."""
        if self.response_type != 8:
            msg = f"not an autocomplete response: {self.response!r}"
            raise AssertionError(msg)
        return list(self.data.get("choices") or [])

    @property
    def modal(self) -> ModalView | None:
        """The modal opened (response type 9), or None."""
        if self.response_type != 9:
            return None
        return _parse_modal(self.data)

    @property
    def followups(self) -> list[RecordedCall]:
        """Webhook posts and edits made with this interaction's token so far (follow-ups, deferred edits)."""
        if self.payload is None:
            return []
        prefix = f"/webhooks/{self.payload['application_id']}/{self.token}"
        return [
            call
            for call in self._rest.calls
            if call.method in {"POST", "PATCH"} and call.path.startswith(prefix) and call.status < 300
        ]

    async def wait_for_followups(self, count: int = 1, timeout: float = 2.0) -> list[RecordedCall]:  # noqa: ASYNC109
        """Wait until at least ``count`` follow-ups/edits arrived (work after a defer runs after the 204)."""
        if self.payload is None:
            return []
        prefix = f"/webhooks/{self.payload['application_id']}/{self.token}"
        await self._rest.wait_for(
            lambda: (
                sum(1 for c in self._rest.calls if c.method in {"POST", "PATCH"} and c.path.startswith(prefix)) >= count
            ),
            timeout=timeout,
        )
        return self.followups

    @property
    def original_message(self) -> dict[str, Any] | None:
        """The interaction's original response message as the fake now stores it (None if none yet)."""
        if self.token is None:
            return None
        return self._rest.original_message(self.token)


class InteractionClient:
    """Signs interactions with ``signing_key`` and POSTs them to a RESTBot at ``base_url``, as Discord does."""

    def __init__(self, base_url: str, signing_key: SigningKey, rest: FakeDiscordREST, *, strict: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.signing_key = signing_key
        self.rest = rest
        #: raise `DiscordWouldRejectError` when the bot answers in the HTTP body with something Discord refuses
        self.strict = strict
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> InteractionClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def sign(self, body: bytes, timestamp: str) -> str:
        """The hex ``X-Signature-Ed25519`` of ``timestamp + body``."""
        return self.signing_key.sign(timestamp.encode() + body).signature.hex()

    async def send(self, payload: Mapping[str, Any], *, strict: bool | None = None) -> InteractionResult:
        """Sign and deliver ``payload``; return once the bot has answered the HTTP request.

        A response in the HTTP body is checked against Discord's rules (`response_problems`); with ``strict``
        (the client's default unless given) a bad one raises `DiscordWouldRejectError`. Responses sent over REST
        are checked by the fake, which answers 400 like Discord.
        """
        body = json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        if int(payload["type"]) != 1:
            self.rest.register_interaction(payload)
        started = time.monotonic()
        result = await self._post(body, self.sign(body, timestamp), timestamp, payload=payload)
        late = time.monotonic() - started - INITIAL_RESPONSE_DEADLINE
        if result.answered_in_body and late > 0:
            # Discord stops waiting for the HTTP answer after 3 s: the member sees "interaction failed".
            self.rest.record_missed(str(payload["id"]), "initial response in the HTTP body", late)
            return result
        if result.answered_in_body and int(payload["type"]) != 1:
            problems = response_problems(result.body_json)
            if not problems:
                self.rest.apply_initial_response(payload, result.body_json, result.body_files)
            elif self.strict if strict is None else strict:
                msg = "Discord would reject the response:\n- " + "\n- ".join(problems)
                msg += f"\nresponse: {json.dumps(result.body_json)[:1000]}"
                raise DiscordWouldRejectError(msg)
        return result

    async def send_many(self, *payloads: Mapping[str, Any]) -> list[InteractionResult]:
        """Deliver several interactions concurrently (e.g. to pay lightbulb's 5 s no-response timeout once)."""
        return list(await asyncio.gather(*(self.send(payload) for payload in payloads)))

    async def send_raw(
        self, body: bytes, signature: str, timestamp: str, *, content_type: str = "application/json"
    ) -> InteractionResult:
        """POST ``body`` with the given signature headers unchanged (for signature-rejection tests)."""
        return await self._post(body, signature, timestamp, payload=None, content_type=content_type)

    async def _post(
        self,
        body: bytes,
        signature: str,
        timestamp: str,
        *,
        payload: Mapping[str, Any] | None,
        content_type: str = "application/json",
    ) -> InteractionResult:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Content-Type": content_type,
            "X-Signature-Ed25519": signature,
            "X-Signature-Timestamp": timestamp,
            "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)",
        }
        async with self._session.post(self.base_url + "/", data=body, headers=headers) as response:
            raw = await response.read()
            status = response.status
            response_type = response.content_type
            body_json: Any = None
            files: list[RecordedFile] = []
            if response_type == "application/json" and raw:
                body_json = json.loads(raw)
            elif response_type.startswith("multipart/"):
                from tests.fakes.discord_rest import parse_multipart

                body_json, files = parse_multipart(response.headers.get("Content-Type", ""), raw)
        return InteractionResult(
            status=status,
            body=raw,
            content_type=response_type,
            body_json=body_json,
            body_files=files,
            payload=payload,
            rest=self.rest,
        )


def said(result: InteractionResult) -> str:
    """Everything the bot wrote for an interaction: its initial response (or, deferred, its edits) and
    follow-ups."""
    followups = [str((c.json or {}).get("content") or "") for c in result.followups]
    texts = [*([] if followups else [result.content or ""]), *followups]
    return "\n".join(t for t in texts if t)
