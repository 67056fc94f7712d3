"""A local stand-in for Discord's gateway (v10), for driving a real, connected hikari.GatewayBot offline.

One aiohttp websocket server on 127.0.0.1 (port 0). It speaks the documented protocol
(https://discord.com/developers/docs/topics/gateway):

- HELLO (op 10) with `heartbeat_interval`, then IDENTIFY (op 2) answered with READY and one GUILD_CREATE per
  configured guild (channels, members, roles, voice states), so hikari's cache fills; a wrong token is closed
  with 4004 (Authentication failed), like Discord.
- HEARTBEAT (op 1) answered with HEARTBEAT_ACK (op 11); every DISPATCH carries the session's sequence number.
- `dispatch` sends an event to every live session; one sent while its shard is disconnected is kept and
  replayed when the shard RESUMEs (op 6), followed by RESUMED.  `drop` closes the connection (with a close code
  or as a plain disconnect); `invalidate_session` sends INVALID_SESSION (op 9); `request_reconnect` sends
  RECONNECT (op 7).
- The bot's own VOICE_STATE_UPDATE (op 4) is recorded in `voice_state_requests` and, with a `voice_endpoint`,
  answered as Discord does: a VOICE_STATE_UPDATE for the bot user with its session id, then a
  VOICE_SERVER_UPDATE with a token, the guild id and the endpoint (`voice_grants` keeps what was handed out, and
  `on_voice_grant` hears of each before the bot does, for a voice server to check).  Leaving (``channel_id``
  null) is answered with a VOICE_STATE_UPDATE without a channel.

hikari connects with ``compress=zlib-stream`` unless it has zstd: frames are then zlib-compressed as one
stream, each message ending with a Z_SYNC_FLUSH; without the query parameter, frames are plain JSON text.

Builders for the payloads of events tests send (`message_create`, `voice_message_create`,
`voice_state_payload`, `voice_server_payload`, `guild_payload`...) reuse the ids of `tests.fakes.interactions`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import secrets
import zlib
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes._server import LocalServer
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_ROLE_ID,
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    APP_ID,
    BOT_USER,
    CHANNEL_ID,
    DEFAULT_MEMBER,
    DEFAULT_PERMISSIONS,
    DEFAULT_USER,
    GUILD_ID,
    Attachment,
    message_object,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from tests.fakes.discord_rest import FakeDiscordREST

__all__ = [
    "IS_VOICE_MESSAGE",
    "VOICE_CHANNEL_ID",
    "FakeDiscordGateway",
    "Op",
    "ReceivedFrame",
    "VoiceGrant",
    "guild_member_payload",
    "guild_payload",
    "message_create",
    "role_payload",
    "text_channel_payload",
    "voice_attachment",
    "voice_channel_payload",
    "voice_message_create",
    "voice_server_payload",
    "voice_state_payload",
]

#: Message flag of a voice message.
IS_VOICE_MESSAGE = 1 << 13
#: The voice channel of the default guild.
VOICE_CHANNEL_ID = 1_100_000_000_000_000_201

_ZLIB_SUFFIX = b"\x00\x00\xff\xff"


class Op:
    """Gateway opcodes."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


# --------------------------------------------------------------------------------------------------------------
# Payload builders
# --------------------------------------------------------------------------------------------------------------


def text_channel_payload(
    channel_id: int = CHANNEL_ID, name: str = "general", *, guild_id: int = GUILD_ID, position: int = 0
) -> dict[str, Any]:
    """A guild text channel (type 0) as GUILD_CREATE lists it."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": None,
        "nsfw": False,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "flags": 0,
    }


def voice_channel_payload(
    channel_id: int = VOICE_CHANNEL_ID, name: str = "Voice", *, guild_id: int = GUILD_ID, position: int = 1
) -> dict[str, Any]:
    """A guild voice channel (type 2)."""
    return {
        "id": str(channel_id),
        "type": 2,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "bitrate": 64000,
        "user_limit": 0,
        "rtc_region": None,
        "video_quality_mode": 1,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "flags": 0,
    }


def role_payload(role_id: int, name: str, *, permissions: int = 0, position: int = 0) -> dict[str, Any]:
    """A role object (the @everyone role has the guild's id)."""
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild_member_payload(member_or_user: Mapping[str, Any], *, roles: Sequence[int] | None = None) -> dict[str, Any]:
    """A guild member as the gateway sends it (no ``permissions``: that is for interactions only)."""
    if "user" in member_or_user:
        member = {k: v for k, v in member_or_user.items() if k != "permissions"}
    else:
        member = {
            "user": dict(member_or_user),
            "nick": None,
            "avatar": None,
            "roles": [],
            "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
    if roles is not None:
        member["roles"] = [str(role) for role in roles]
    return json.loads(json.dumps(member))


def voice_state_payload(
    user_id: int,
    channel_id: int | None,
    *,
    guild_id: int = GUILD_ID,
    session_id: str | None = None,
    member: Mapping[str, Any] | None = None,
    self_mute: bool = False,
    self_deaf: bool = False,
) -> dict[str, Any]:
    """A voice state (the data of VOICE_STATE_UPDATE; in GUILD_CREATE without ``guild_id``)."""
    state: dict[str, Any] = {
        "guild_id": str(guild_id),
        "channel_id": str(channel_id) if channel_id is not None else None,
        "user_id": str(user_id),
        "session_id": session_id or secrets.token_hex(16),
        "deaf": False,
        "mute": False,
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_stream": False,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if member is not None:
        state["member"] = guild_member_payload(member)
    return state


def voice_server_payload(token: str, endpoint: str | None, *, guild_id: int = GUILD_ID) -> dict[str, Any]:
    """The data of VOICE_SERVER_UPDATE (``endpoint`` is ``host:port``, without a scheme, as Discord sends it)."""
    return {"token": token, "guild_id": str(guild_id), "endpoint": endpoint}


def guild_payload(
    guild_id: int = GUILD_ID,
    *,
    name: str = "Test Server",
    owner_id: int | None = None,
    channels: Sequence[Mapping[str, Any]] | None = None,
    members: Sequence[Mapping[str, Any]] | None = None,
    roles: Sequence[Mapping[str, Any]] | None = None,
    voice_states: Sequence[Mapping[str, Any]] = (),
    bot_user: Mapping[str, Any] = BOT_USER,
) -> dict[str, Any]:
    """A GUILD_CREATE payload: by default a text and a voice channel, the bot, a member and an admin, the
    @everyone and admin roles, nobody in voice.  The bot's member is added when ``members`` lacks it."""
    the_channels = (
        [text_channel_payload(guild_id=guild_id), voice_channel_payload(guild_id=guild_id)]
        if channels is None
        else [dict(c) for c in channels]
    )
    the_members = (
        [guild_member_payload(DEFAULT_MEMBER), guild_member_payload(ADMIN_MEMBER)]
        if members is None
        else [guild_member_payload(m) for m in members]
    )
    if not any(m["user"]["id"] == bot_user["id"] for m in the_members):
        the_members.insert(0, guild_member_payload(bot_user))
    the_roles = (
        [
            role_payload(guild_id, "@everyone", permissions=DEFAULT_PERMISSIONS),
            role_payload(ADMIN_ROLE_ID, "admin", permissions=ALL_PERMISSIONS | ADMINISTRATOR, position=1),
        ]
        if roles is None
        else [dict(r) for r in roles]
    )
    states = []
    for state in voice_states:
        copied = {k: v for k, v in state.items() if k not in {"guild_id", "member"}}
        states.append(copied)
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(owner_id if owner_id is not None else DEFAULT_USER["id"]),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_video_channel_users": 25,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "nsfw": False,
        "premium_progress_bar_enabled": False,
        "emojis": [],
        "stickers": [],
        "roles": the_roles,
        # GUILD_CREATE's extra fields
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "large": False,
        "unavailable": False,
        "member_count": len(the_members),
        "members": the_members,
        "channels": the_channels,
        "threads": [],
        "presences": [],
        "voice_states": states,
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def message_create(
    content: str,
    *,
    author: Mapping[str, Any] | None = None,
    message_id: int | None = None,
    channel_id: int = CHANNEL_ID,
    guild: bool = True,
    attachments: Sequence[Attachment] = (),
    flags: int = 0,
    referenced_message: Mapping[str, Any] | None = None,
    mentions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The data of a MESSAGE_CREATE: the message object, plus in a guild the author's partial ``member``.

    ``author`` is a user or a member payload (default: `DEFAULT_MEMBER`); ``referenced_message`` makes it a reply.
    """
    chosen = author if author is not None else DEFAULT_MEMBER
    user = dict(chosen["user"]) if "user" in chosen else dict(chosen)
    message = message_object(
        content=content,
        author=user,
        message_id=message_id,
        channel_id=channel_id,
        guild_id=GUILD_ID if guild else None,
        attachments=[attachment.to_payload() for attachment in attachments],
        flags=flags,
        referenced_message=referenced_message,
        mentions=mentions,
    )
    if guild:
        member = guild_member_payload(chosen)
        member.pop("user", None)
        message["member"] = member
    return message


def voice_attachment(
    audio: bytes,
    *,
    duration_secs: float,
    rest: FakeDiscordREST | None = None,
    waveform: bytes | None = None,
    filename: str = "voice-message.ogg",
    channel_id: int = CHANNEL_ID,
) -> Attachment:
    """A voice message's attachment (OGG/Opus, ``duration_secs``, a base64 ``waveform`` of up to 256 samples);
    with ``rest`` its url is served by that `FakeDiscordREST`."""
    samples = waveform if waveform is not None else bytes(range(0, 256, 4))
    attachment = Attachment(
        filename=filename,
        content=audio,
        content_type="audio/ogg",
        duration_secs=duration_secs,
        waveform=base64.b64encode(samples[:256]).decode(),
        channel_id=channel_id,
    )
    return rest.host(attachment) if rest is not None else attachment


def voice_message_create(
    attachment: Attachment,
    *,
    author: Mapping[str, Any] | None = None,
    message_id: int | None = None,
    referenced_message: Mapping[str, Any] | None = None,
    guild: bool = True,
) -> dict[str, Any]:
    """The data of a MESSAGE_CREATE of a voice message: no content, the IS_VOICE_MESSAGE flag, one attachment
    (see `voice_attachment`)."""
    return message_create(
        "",
        author=author,
        message_id=message_id,
        channel_id=attachment.channel_id,
        guild=guild,
        attachments=[attachment],
        flags=IS_VOICE_MESSAGE,
        referenced_message=referenced_message,
    )


# --------------------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReceivedFrame:
    """A payload the bot sent; ``connection`` numbers the websocket connections from 1."""

    op: int
    d: Any
    connection: int


@dataclasses.dataclass(frozen=True)
class VoiceGrant:
    """What the gateway handed the bot for a voice connection (a voice server checks the bot's voice IDENTIFY
    against it: ``server_id`` = guild id, ``user_id``, ``session_id``, ``token``)."""

    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    token: str
    endpoint: str


@dataclasses.dataclass
class _Session:
    id: str
    shard: tuple[int, int]
    intents: int
    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list[dict[str, Any]])
    seq: int = 0
    connection: _Connection | None = None
    ended: bool = False
    voice_session_id: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))


class _Connection:
    def __init__(self, number: int, ws: web.WebSocketResponse, request: web.Request, *, zlib_stream: bool) -> None:
        self.number = number
        self.ws = ws
        self.request = request
        self.session: _Session | None = None
        #: The code of the close frame the client sent first (None: the server closed, or no close frame).
        self.client_close_code: int | None = None
        self._deflate = zlib.compressobj() if zlib_stream else None
        self.lock = asyncio.Lock()

    async def send(self, payload: Mapping[str, Any]) -> None:
        """Send one payload (the caller holds `lock`, so compressed frames stay in stream order)."""
        raw = json.dumps(payload, separators=(",", ":"))
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError):
            if self._deflate is None:
                await self.ws.send_str(raw)
            else:
                data = self._deflate.compress(raw.encode()) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
                assert data.endswith(_ZLIB_SUFFIX)
                await self.ws.send_bytes(data)


class FakeDiscordGateway(LocalServer):
    """Discord's gateway on 127.0.0.1, recording what the bot sends; see the module docstring."""

    def __init__(
        self,
        *,
        token: str | None = None,
        guilds: Sequence[Mapping[str, Any]] | None = None,
        bot_user: Mapping[str, Any] = BOT_USER,
        application_id: int = APP_ID,
        application_flags: int = 0,
        heartbeat_interval: float = 10.0,
        voice_endpoint: str | None = None,
    ) -> None:
        #: The token IDENTIFY and RESUME must carry (None: any).
        self.token = token
        #: GUILD_CREATE payloads sent after READY (default: `guild_payload()`).
        self.guilds: list[dict[str, Any]] = (
            [guild_payload(bot_user=bot_user)] if guilds is None else [json.loads(json.dumps(g)) for g in guilds]
        )
        self.bot_user = dict(bot_user)
        self.application_id = application_id
        self.application_flags = application_flags
        #: Seconds between heartbeats asked for in HELLO (Discord: about 41; a short one makes a shard whose event
        #: loop is busy for longer than that miss an ACK and reconnect).
        self.heartbeat_interval = heartbeat_interval
        #: ``host:port`` of the voice server VOICE_SERVER_UPDATE points to (None: op 4 is only recorded).
        self.voice_endpoint = voice_endpoint
        #: Every payload the bot sent, in order.
        self.received: list[ReceivedFrame] = []
        #: The ``d`` of every IDENTIFY and RESUME.
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        #: The ``d`` of every VOICE_STATE_UPDATE (op 4) the bot sent.
        self.voice_state_requests: list[dict[str, Any]] = []
        #: The voice connection handed out per guild (the latest).
        self.voice_grants: dict[int, VoiceGrant] = {}
        #: Called with each grant before its VOICE_SERVER_UPDATE goes out, i.e. before the bot can reach the
        #: voice server: e.g. to tell a loopback voice server which session id and token to expect.
        self.on_voice_grant: Callable[[VoiceGrant], None] | None = None
        #: Close codes of the connections the bot closed (hikari: 1001 for good, 3000 to resume later).
        self.client_close_codes: list[int | None] = []
        self._sessions: dict[str, _Session] = {}
        self._connections: list[_Connection] = []
        self._connection_count = 0
        self._resumed = 0  # RESUMEs answered
        self._changed: asyncio.Condition | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        await self._serve(app)
        self._changed = asyncio.Condition()

    async def close(self) -> None:
        for connection in list(self._connections):
            await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")
        await self._stop_serving()

    @property
    def url(self) -> str:
        """The ws URL (``GET /gateway/bot``'s ``url`` and READY's ``resume_gateway_url``)."""
        return self._address("ws")

    # ------------------------------------------------------------------------------------------ test helpers

    @property
    def connected(self) -> int:
        """How many websocket connections are open now."""
        return len(self._connections)

    @property
    def session_ids(self) -> list[str]:
        """Ids of the sessions started (by IDENTIFY), oldest first."""
        return list(self._sessions)

    def frames(self, op: int) -> list[ReceivedFrame]:
        """Received payloads with opcode ``op``."""
        return [frame for frame in self.received if frame.op == op]

    def sent(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """DISPATCH payloads sent on a session (default: the latest), in sequence order."""
        session = self._session(session_id)
        return list(session.sent)

    def seq(self, session_id: str | None = None) -> int:
        """The last sequence number used on a session (default: the latest)."""
        return self._session(session_id).seq

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds, re-checking after everything the bot sends and every (dis)connect."""
        if predicate():
            return
        if self._changed is None:
            msg = "FakeDiscordGateway is not started"
            raise RuntimeError(msg)
        condition = self._changed
        async with asyncio.timeout(timeout), condition:
            await condition.wait_for(predicate)

    async def wait_for_op(self, op: int, *, count: int = 1, timeout: float = 10.0) -> list[ReceivedFrame]:  # noqa: ASYNC109
        """The received payloads with opcode ``op`` once there are at least ``count``."""
        await self.wait_for(lambda: len(self.frames(op)) >= count, timeout)
        return self.frames(op)

    async def wait_for_identify(self, *, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ``d`` of the ``count``-th IDENTIFY once it came."""
        await self.wait_for(lambda: len(self.identifies) >= count, timeout)
        return self.identifies[count - 1]

    async def wait_for_resume(self, *, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ``d`` of the ``count``-th RESUME once it came and was answered (replay and RESUMED sent)."""
        await self.wait_for(lambda: len(self.resumes) >= count and self._resumed >= count, timeout)
        return self.resumes[count - 1]

    async def wait_for_voice_state_request(self, *, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ``d`` of the ``count``-th op 4 once it came."""
        await self.wait_for(lambda: len(self.voice_state_requests) >= count, timeout)
        return self.voice_state_requests[count - 1]

    # ------------------------------------------------------------------------------------------ sending

    def _session(self, session_id: str | None) -> _Session:
        if not self._sessions:
            msg = "no shard has identified yet"
            raise RuntimeError(msg)
        return self._sessions[session_id] if session_id is not None else list(self._sessions.values())[-1]

    async def _send_dispatch(self, session: _Session, event: str, data: Mapping[str, Any]) -> int:
        """Number the event on ``session``, keep it for replay, send it if the shard is connected."""
        connection = session.connection
        lock = connection.lock if connection is not None else contextlib.nullcontext()
        async with lock:
            session.seq += 1
            payload = {"op": Op.DISPATCH, "t": event, "s": session.seq, "d": json.loads(json.dumps(data))}
            session.sent.append(payload)
            if connection is not None and session.connection is connection:
                await connection.send(payload)
            return session.seq

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> int:
        """Send DISPATCH ``event`` with ``data`` to every live session; return once sent (a disconnected shard
        gets it when it resumes).  Returns the sequence number it got (on the latest session)."""
        live = [s for s in self._sessions.values() if not s.ended]
        if not live:
            msg = f"no live gateway session to dispatch {event} to"
            raise RuntimeError(msg)
        seq = 0
        for session in live:
            seq = await self._send_dispatch(session, event, data)
        return seq

    async def drop(self, code: int | None = 4000, reason: str = "dropped by the test") -> None:
        """Close every open connection: with close ``code`` (4000, Unknown error, lets the shard resume), or, with
        ``None``, a plain disconnect (the TCP connection goes away without a close frame).  Returns once closed."""
        connections = list(self._connections)
        for connection in connections:
            if connection.session is not None:
                connection.session.connection = None
            if code is None:
                transport = connection.request.transport
                if transport is not None:
                    transport.abort()
            else:
                await connection.ws.close(code=code, message=reason.encode())
        await self.wait_for(lambda: not any(c in self._connections for c in connections))

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send INVALID_SESSION (op 9): the shard identifies anew (``resumable``: it resumes)."""
        for connection in list(self._connections):
            if connection.session is not None and not resumable:
                connection.session.ended = True
            async with connection.lock:
                await connection.send({"op": Op.INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def request_reconnect(self) -> None:
        """Send RECONNECT (op 7): the shard reconnects and resumes."""
        for connection in list(self._connections):
            async with connection.lock:
                await connection.send({"op": Op.RECONNECT, "d": None, "s": None, "t": None})

    # ------------------------------------------------------------------------------------------ protocol

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        self._connection_count += 1
        connection = _Connection(self._connection_count, ws, request, zlib_stream=compress == "zlib-stream")
        if request.query.get("v") != "10" or request.query.get("encoding", "json") != "json":
            await ws.close(code=4012, message=b"Invalid API version")
            return ws
        if compress not in {None, "zlib-stream"}:
            await ws.close(code=4000, message=f"compression {compress} not supported by the fake".encode())
            return ws
        self._connections.append(connection)
        await self._notify()
        try:
            async with connection.lock:
                interval_ms = int(self.heartbeat_interval * 1000)
                await connection.send({"op": Op.HELLO, "d": {"heartbeat_interval": interval_ms}, "s": None, "t": None})
            while True:
                message = await ws.receive()  # (iterating the socket would stop before its CLOSE message)
                if message.type == WSMsgType.CLOSE:
                    connection.client_close_code = int(message.data)
                    break
                if message.type not in {WSMsgType.TEXT, WSMsgType.BINARY}:
                    break
                try:
                    payload = json.loads(message.data)
                    op = int(payload["op"])
                except (ValueError, KeyError, TypeError):
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                self.received.append(ReceivedFrame(op, payload.get("d"), connection.number))
                await self._on_payload(connection, op, payload.get("d"))
                await self._notify()
        finally:
            self._connections.remove(connection)
            if connection.client_close_code is not None:
                self.client_close_codes.append(connection.client_close_code)
            session = connection.session
            if session is not None:
                if session.connection is connection:
                    session.connection = None
                if connection.client_close_code in {WSCloseCode.OK, WSCloseCode.GOING_AWAY}:
                    session.ended = True  # Discord ends a session the client closes with 1000 or 1001
            await self._notify()
        return ws

    async def _on_payload(self, connection: _Connection, op: int, data: Any) -> None:
        if op == Op.HEARTBEAT:
            async with connection.lock:
                await connection.send({"op": Op.HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == Op.IDENTIFY:
            await self._identify(connection, data)
        elif op == Op.RESUME:
            await self._resume(connection, data)
        elif op == Op.VOICE_STATE_UPDATE:
            await self._voice_state_update(connection, data)

    async def _authenticate(self, connection: _Connection, data: Any) -> bool:
        if self.token is not None and (not isinstance(data, dict) or data.get("token") != self.token):
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return False
        if connection.session is not None:
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return False
        return True

    async def _identify(self, connection: _Connection, data: Any) -> None:
        self.identifies.append(data)
        if not await self._authenticate(connection, data):
            return
        shard = data.get("shard") or [0, 1]
        session = _Session(id=secrets.token_hex(16), shard=(int(shard[0]), int(shard[1])), intents=int(data["intents"]))
        self._sessions[session.id] = session
        connection.session = session
        session.connection = connection
        user = {**self.bot_user, "bot": True, "mfa_enabled": False, "verified": True, "flags": 0}
        ready = {
            "v": 10,
            "user": user,
            "guilds": [{"id": g["id"], "unavailable": True} for g in self.guilds],
            "session_id": session.id,
            "resume_gateway_url": self.url,
            "shard": list(session.shard),
            "application": {"id": str(self.application_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild in self.guilds:
            await self._send_dispatch(session, "GUILD_CREATE", guild)

    async def _resume(self, connection: _Connection, data: Any) -> None:
        self.resumes.append(data)
        if not await self._authenticate(connection, data):
            return
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or session.ended:
            async with connection.lock:
                await connection.send({"op": Op.INVALID_SESSION, "d": False, "s": None, "t": None})
            self._resumed += 1
            return
        async with connection.lock:
            connection.session = session
            session.connection = connection
            after = int(data.get("seq") or 0)
            for payload in session.sent:
                if int(payload["s"]) > after:
                    await connection.send(payload)
        await self._send_dispatch(session, "RESUMED", {})
        self._resumed += 1

    def _bot_member(self, guild_id: int) -> dict[str, Any]:
        for guild in self.guilds:
            if int(guild["id"]) == guild_id:
                for member in guild["members"]:
                    if member["user"]["id"] == self.bot_user["id"]:
                        return dict(member)
        return guild_member_payload(self.bot_user)

    async def _voice_state_update(self, connection: _Connection, data: Any) -> None:
        self.voice_state_requests.append(data)
        session = connection.session
        if self.voice_endpoint is None or session is None or not isinstance(data, dict):
            return
        guild_id = int(data["guild_id"])
        raw_channel = data.get("channel_id")
        channel_id = int(raw_channel) if raw_channel is not None else None
        user_id = int(self.bot_user["id"])
        state = voice_state_payload(
            user_id,
            channel_id,
            guild_id=guild_id,
            session_id=session.voice_session_id,
            member=self._bot_member(guild_id),
            self_mute=bool(data.get("self_mute", False)),
            self_deaf=bool(data.get("self_deaf", False)),
        )
        self._remember_voice_state(guild_id, state)
        await self._send_dispatch(session, "VOICE_STATE_UPDATE", state)
        if channel_id is None:
            self.voice_grants.pop(guild_id, None)
            return
        token = secrets.token_hex(8)
        grant = VoiceGrant(
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            session_id=session.voice_session_id,
            token=token,
            endpoint=self.voice_endpoint,
        )
        self.voice_grants[guild_id] = grant
        if self.on_voice_grant is not None:
            self.on_voice_grant(grant)
        await self._send_dispatch(
            session, "VOICE_SERVER_UPDATE", voice_server_payload(token, self.voice_endpoint, guild_id=guild_id)
        )

    def _remember_voice_state(self, guild_id: int, state: Mapping[str, Any]) -> None:
        """Keep the bot's voice state in its guild's GUILD_CREATE (for a later IDENTIFY)."""
        for guild in self.guilds:
            if int(guild["id"]) == guild_id:
                others = [s for s in guild["voice_states"] if s["user_id"] != state["user_id"]]
                if state["channel_id"] is not None:
                    others.append({k: v for k, v in state.items() if k not in {"guild_id", "member"}})
                guild["voice_states"] = others
