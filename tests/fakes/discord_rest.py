"""A local stand-in for Discord's REST API (v10), for driving a real hikari RESTBot offline.

One aiohttp app on 127.0.0.1 with a catch-all ``/api/v10/{tail}`` route. Every call is recorded as a
`RecordedCall`; the answers follow Discord's documented shapes, and a message store keeps what the bot created
so later reads and edits see it. Attachments the bot uploads (and files put there with `host`) are served at
``/attachments/{channel}/{id}/{filename}`` like Discord's CDN, so code that downloads them works too.

Paths in `RecordedCall.path` are relative to the API root: ``/interactions/1/tok/callback``.

Discord's deadlines are enforced: an initial response (``POST /interactions/{id}/{token}/callback``) more than
`INITIAL_RESPONSE_DEADLINE` seconds after the interaction was delivered gets Discord's 404 "Unknown interaction"
(code 10062), and the interaction token serves follow-ups and edits for `TOKEN_LIFETIME` seconds only (then
401 "Invalid Webhook Token", code 50027). Each such refusal is kept in `missed_deadlines`; the harness fails a
test that leaves any (`assert_deadlines_met`). `advance` moves the fake's clock forward, to test the 15 minutes
without waiting them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import email.message
import json
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes._server import LocalServer
from tests.fakes.interactions import (
    APP_ID,
    BOT_USER,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    INITIAL_RESPONSE_DEADLINE,
    LOADING,
    Attachment,
    assign_component_ids,
    iso_timestamp,
    message_object,
    message_problems,
    next_snowflake,
    response_problems,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "INITIAL_RESPONSE_DEADLINE",
    "TOKEN_LIFETIME",
    "FakeDiscordREST",
    "MissedDeadline",
    "RecordedCall",
    "RecordedFile",
    "parse_multipart",
]

#: Seconds an interaction token serves follow-ups and edits.
TOKEN_LIFETIME = 15 * 60.0

_ERROR_MESSAGES = {
    400: ("400: Bad Request", 0),
    401: ("401: Unauthorized", 0),
    403: ("Missing Permissions", 50013),
    404: ("404: Not Found", 0),
    405: ("405: Method Not Allowed", 0),
    429: ("You are being rate limited.", 0),
    500: ("500: Internal Server Error", 0),
    502: ("502: Bad Gateway", 0),
    503: ("503: Service Unavailable", 0),
}


@dataclasses.dataclass(frozen=True)
class RecordedFile:
    """One uploaded file of a multipart request (``name`` is the form field, e.g. ``files[0]``)."""

    name: str
    filename: str
    content: bytes
    content_type: str


@dataclasses.dataclass
class RecordedCall:
    """One request the bot made to the fake; ``json`` is the JSON body or the parsed ``payload_json``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any | None
    files: list[RecordedFile] = dataclasses.field(default_factory=list)
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def parse_multipart(content_type: str, raw: bytes) -> tuple[Any | None, list[RecordedFile]]:
    """Split a ``multipart/form-data`` body into its parsed ``payload_json`` and its file parts."""
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str):
        msg = f"multipart body without a boundary: {content_type!r}"
        raise ValueError(msg)
    payload: Any | None = None
    files: list[RecordedFile] = []
    delimiter = b"--" + boundary.encode()
    for chunk in raw.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        body = body.removesuffix(b"\r\n")
        part = email.message.Message()
        for line in head.decode("utf-8").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                part[key.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        name = name if isinstance(name, str) else ""
        if name == "payload_json":
            payload = json.loads(body)
        elif filename is not None:
            part_type = part.get("content-type", "application/octet-stream")
            files.append(RecordedFile(name=name, filename=filename, content=body, content_type=str(part_type)))
    return payload, files


@dataclasses.dataclass
class _Interaction:
    id: str
    token: str
    type: int
    command_type: int | None
    user: dict[str, Any]
    channel_id: int
    guild_id: int | None
    component_message_id: int | None = None
    original_message_id: int | None = None
    acknowledged: bool = False
    #: When it was delivered, on the fake's clock.
    received_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class MissedDeadline:
    """An answer Discord would have refused for coming too late."""

    interaction_id: str
    what: str
    late_by: float


@dataclasses.dataclass
class _Failure:
    status: int
    path_contains: str
    method: str | None
    remaining: int
    body: dict[str, Any]
    headers: dict[str, str]


class _Reply(Exception):
    """Raised by a route handler to answer with ``status`` and ``body``."""

    def __init__(self, status: int, body: Any | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _not_found(message: str = "404: Not Found", code: int = 0) -> _Reply:
    return _Reply(404, {"message": message, "code": code})


def _unknown_message() -> _Reply:
    return _not_found("Unknown Message", 10008)


def _invalid_form_body(problems: list[str]) -> _Reply:
    errors = {"_errors": [{"code": "BASE_TYPE_INVALID", "message": problem} for problem in problems]}
    return _Reply(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})


def _checked_message_data(call: RecordedCall) -> dict[str, Any]:
    data = call.json if isinstance(call.json, dict) else {}
    if problems := message_problems(data):
        raise _invalid_form_body(problems)
    return data


class FakeDiscordREST(LocalServer):
    """Discord's REST API on 127.0.0.1, recording calls and keeping the messages the bot makes."""

    def __init__(
        self,
        *,
        application_id: int = APP_ID,
        bot_user: Mapping[str, Any] = BOT_USER,
        guild_id: int = GUILD_ID,
        verify_key_hex: str = "00" * 32,
        gateway_url: str | None = None,
    ) -> None:
        self.application_id = application_id
        #: The ws URL ``GET /gateway/bot`` reports (a `FakeDiscordGateway`'s); unset, that route answers 404.
        self.gateway_url = gateway_url
        self.bot_user = dict(bot_user)
        self.guild_id = guild_id
        #: hex public key reported by ``GET /oauth2/applications/@me``; set it to the bot's verify key.
        self.verify_key_hex = verify_key_hex
        self.calls: list[RecordedCall] = []
        self.messages: dict[int, dict[str, Any]] = {}
        #: registered commands: ``None`` for global, else guild id -> command id -> command object.
        self.commands: dict[int | None, dict[int, dict[str, Any]]] = {}
        self._texts: list[str] = []
        self._interactions: dict[str, _Interaction] = {}
        self._failures: list[_Failure] = []
        self._hosted: dict[str, tuple[bytes, str]] = {}
        self._changed: asyncio.Condition | None = None
        self._clock_offset = 0.0
        #: The bot's DM channel with each user it opened one with (user id -> channel id).
        self.dm_channels: dict[int, int] = {}
        #: Users whose DMs are closed to the bot (opening one answers 403, code 50007).
        self.closed_dms: set[int] = set()
        #: Threads (channel id -> thread channel object): those the bot started on a message, and those a test
        #: adds with :meth:`add_thread`; ``GET /channels/{id}`` answers them, any other id as a text channel.
        self.threads: dict[int, dict[str, Any]] = {}
        #: Answers refused for missing Discord's deadlines (see the module docstring).
        self.missed_deadlines: list[MissedDeadline] = []

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle)
        app.router.add_get("/attachments/{tail:.*}", self._serve_attachment)
        await self._serve(app)
        self._changed = asyncio.Condition()

    async def close(self) -> None:
        await self._stop_serving()

    @property
    def base_url(self) -> str:
        return self._address("http")

    @property
    def rest_url(self) -> str:
        """The ``rest_url`` to give hikari: ``http://127.0.0.1:PORT/api/v10``."""
        return self.base_url + "/api/v10"

    # ------------------------------------------------------------------------------------------ deadlines

    def now(self) -> float:
        """The fake's clock (monotonic seconds, plus whatever `advance` added)."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for every interaction delivered so far (their deadlines come closer)."""
        self._clock_offset += seconds

    def record_missed(self, interaction_id: str, what: str, late_by: float) -> None:
        self.missed_deadlines.append(MissedDeadline(interaction_id, what, late_by))

    def assert_deadlines_met(self) -> None:
        """Fail when the bot answered anything later than Discord accepts."""
        if self.missed_deadlines:
            lines = [
                f"- interaction {m.interaction_id}: {m.what}, {m.late_by:.2f} s late" for m in self.missed_deadlines
            ]
            msg = "Discord would have refused these late answers:\n" + "\n".join(lines)
            raise AssertionError(msg)

    def _check_initial_deadline(self, interaction: _Interaction) -> None:
        late = self.now() - interaction.received_at - INITIAL_RESPONSE_DEADLINE
        if interaction.received_at and late > 0:
            self.record_missed(interaction.id, "initial response", late)
            raise _not_found("Unknown interaction", 10062)

    def _check_token(self, token: str) -> None:
        interaction = self._interactions.get(token)
        if interaction is None or not interaction.received_at:
            return
        late = self.now() - interaction.received_at - TOKEN_LIFETIME
        if late > 0:
            self.record_missed(interaction.id, "follow-up or edit with an expired token", late)
            raise _Reply(401, {"message": "Invalid Webhook Token", "code": 50027})

    # ------------------------------------------------------------------------------------------ test helpers

    def calls_to(self, method: str, path_contains: str) -> list[RecordedCall]:
        """Recorded calls with this HTTP method whose path contains ``path_contains``."""
        return [c for c in self.calls if c.method == method.upper() and path_contains in c.path]

    def message_texts(self) -> list[str]:
        """Content of every message created or edited (with content), in order."""
        return list(self._texts)

    def fail_next(
        self,
        status: int,
        path_contains: str,
        *,
        method: str | None = None,
        count: int = 1,
        retry_after: float = 0.01,
        message: str | None = None,
        code: int | None = None,
    ) -> None:
        """Answer the next ``count`` matching calls with a Discord error instead of handling them.

        429 carries ``retry_after`` (seconds) in the body as Discord does: hikari sleeps and retries. hikari also
        retries 500/502/503/504 with exponential back-off (about 1 s, then 2 s, ...) up to ``max_retries``.
        """
        default_message, default_code = _ERROR_MESSAGES.get(status, (f"{status}: Error", 0))
        body: dict[str, Any] = {
            "message": message or default_message,
            "code": code if code is not None else default_code,
        }
        headers: dict[str, str] = {}
        if status == 429:
            body.update(retry_after=retry_after, **{"global": False})
            headers = {"Retry-After": str(retry_after), "X-RateLimit-Scope": "user"}
        self._failures.append(_Failure(status, path_contains, method.upper() if method else None, count, body, headers))

    def host(self, attachment: Attachment) -> Attachment:
        """A copy of ``attachment`` whose ``url`` this fake serves (for code that downloads attachments)."""
        key = f"{attachment.channel_id}/{attachment.id}/{attachment.filename}"
        self._hosted[key] = (attachment.content, attachment.content_type)
        return dataclasses.replace(attachment, url=f"{self.base_url}/attachments/{key}")

    def original_message(self, token: str) -> dict[str, Any] | None:
        """A copy of the stored original response of the interaction with ``token`` (None if none yet)."""
        interaction = self._interactions.get(token)
        if interaction is None or interaction.original_message_id is None:
            return None
        message = self.messages.get(interaction.original_message_id)
        return copy.deepcopy(message) if message is not None else None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds, re-checking after every recorded call."""
        if predicate():
            return
        if self._changed is None:
            msg = "FakeDiscordREST is not started"
            raise RuntimeError(msg)
        condition = self._changed
        async with asyncio.timeout(timeout), condition:
            await condition.wait_for(predicate)

    async def wait_for_calls(
        self,
        method: str,
        path_contains: str,
        *,
        count: int = 1,
        timeout: float = 2.0,  # noqa: ASYNC109
    ) -> list[RecordedCall]:
        """The matching calls once there are at least ``count`` of them."""
        await self.wait_for(lambda: len(self.calls_to(method, path_contains)) >= count, timeout)
        return self.calls_to(method, path_contains)

    # ------------------------------------------------------------------------------------------ interactions

    def register_interaction(self, payload: Mapping[str, Any]) -> None:
        """Tell the fake about an interaction being delivered, so callbacks and webhooks know its context."""
        token = str(payload["token"])
        member = payload.get("member")
        user = dict(member["user"]) if member else dict(payload.get("user") or {})
        guild_id = int(payload["guild_id"]) if payload.get("guild_id") else None
        data = payload.get("data") or {}
        interaction = _Interaction(
            id=str(payload["id"]),
            token=token,
            type=int(payload["type"]),
            command_type=int(data.get("type", 1)) if int(payload["type"]) in {2, 4} else None,
            user=user,
            channel_id=int(payload.get("channel_id") or payload["channel"]["id"]),
            guild_id=guild_id,
            received_at=self.now(),
        )
        if message := payload.get("message"):
            message_id = int(message["id"])
            self.messages.setdefault(message_id, copy.deepcopy(dict(message)))
            interaction.component_message_id = message_id
        self._interactions[token] = interaction

    def apply_initial_response(
        self, payload: Mapping[str, Any], response: Mapping[str, Any], files: list[RecordedFile]
    ) -> dict[str, Any] | None:
        """Store what an initial response answered in the HTTP body creates (miru answers that way)."""
        interaction = self._interactions.get(str(payload["token"]))
        if interaction is None:
            self.register_interaction(payload)
            interaction = self._interactions[str(payload["token"])]
        interaction.acknowledged = True
        return self._apply_response(interaction, dict(response), files)

    def _interaction_for(self, interaction_id: str, token: str) -> _Interaction:
        interaction = self._interactions.get(token)
        if interaction is None:  # not delivered through InteractionClient: assume a slash command
            interaction = _Interaction(
                id=interaction_id,
                token=token,
                type=2,
                command_type=1,
                user={},
                channel_id=CHANNEL_ID,
                guild_id=self.guild_id,
            )
            self._interactions[token] = interaction
        return interaction

    def _interaction_metadata(self, interaction: _Interaction) -> dict[str, Any]:
        owners = {"0": str(interaction.guild_id or 0)}
        metadata: dict[str, Any] = {
            "id": interaction.id,
            "type": interaction.type,
            "user": interaction.user or dict(self.bot_user),
            "authorizing_integration_owners": owners,
        }
        if interaction.type == 3 and interaction.component_message_id is not None:
            metadata["interacted_message_id"] = str(interaction.component_message_id)
        if interaction.type == 5:
            metadata["triggering_interaction_metadata"] = {
                "id": interaction.id,
                "type": 2,
                "user": metadata["user"],
                "authorizing_integration_owners": owners,
            }
        return metadata

    def _apply_response(
        self, interaction: _Interaction, body: dict[str, Any], files: list[RecordedFile]
    ) -> dict[str, Any] | None:
        response_type = int(body["type"])
        data = dict(body.get("data") or {})
        if response_type in {4, 5}:
            flags = int(data.get("flags") or 0)
            if response_type == 5:
                data = {"content": "", "flags": flags | LOADING}
            message_type = {1: 20, 2: 23, 3: 23}.get(interaction.command_type or 0, 0)
            message = self._create_message(
                interaction.channel_id,
                data,
                files,
                guild_id=interaction.guild_id,
                message_type=message_type,
                webhook_id=self.application_id,
                interaction_metadata=self._interaction_metadata(interaction),
                record_text=response_type == 4,
            )
            interaction.original_message_id = int(message["id"])
            return message
        if response_type in {6, 7} and interaction.component_message_id is not None:
            interaction.original_message_id = interaction.component_message_id
            message = self.messages.get(interaction.component_message_id)
            if message is not None and response_type == 7:
                self._edit_message(message, data, files)
            return message
        return None

    # ------------------------------------------------------------------------------------------ messages

    def _attachments_from(
        self, channel_id: int, data: Mapping[str, Any], files: list[RecordedFile], existing: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        uploads = {f.name: f for f in files}
        by_id = {str(a["id"]): a for a in existing}
        result: list[dict[str, Any]] = []
        listed = data.get("attachments")
        if listed is None:
            listed = [{"id": int(f.name[6:-1]), "filename": f.filename} for f in files if f.name.startswith("files[")]
            result.extend(existing)
        for item in listed:
            upload = uploads.get(f"files[{item['id']}]")
            if upload is not None:
                attachment = Attachment(
                    filename=str(item.get("filename") or upload.filename),
                    content=upload.content,
                    content_type=upload.content_type,
                    channel_id=channel_id,
                )
                hosted = self.host(attachment).to_payload()
                if item.get("description"):
                    hosted["description"] = item["description"]
                result.append(hosted)
            elif str(item["id"]) in by_id:
                result.append(by_id[str(item["id"])])
        return result

    def _create_message(
        self,
        channel_id: int,
        data: Mapping[str, Any],
        files: list[RecordedFile],
        *,
        guild_id: int | None,
        message_type: int = 0,
        webhook_id: int | None = None,
        interaction_metadata: Mapping[str, Any] | None = None,
        record_text: bool = True,
    ) -> dict[str, Any]:
        referenced: dict[str, Any] | None = None
        reference = data.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id"):
            referenced = self.messages.get(int(reference["message_id"]))
        message = message_object(
            content=str(data.get("content") or ""),
            author=self.bot_user,
            channel_id=channel_id,
            guild_id=guild_id,
            components=data.get("components"),
            embeds=data.get("embeds"),
            attachments=self._attachments_from(channel_id, data, files, []),
            flags=int(data.get("flags") or 0),
            message_type=message_type,
            application_id=self.application_id if webhook_id is not None else None,
            webhook_id=webhook_id,
            interaction_metadata=interaction_metadata,
            referenced_message=referenced,
        )
        message["tts"] = bool(data.get("tts", False))
        self.messages[int(message["id"])] = message
        if record_text:
            self._texts.append(message["content"])
        return message

    def _edit_message(self, message: dict[str, Any], data: Mapping[str, Any], files: list[RecordedFile]) -> None:
        if "content" in data:
            message["content"] = str(data["content"] or "")
        if "embeds" in data:
            message["embeds"] = list(data["embeds"] or [])
        if "components" in data:
            message["components"] = assign_component_ids(data["components"] or [])
        if "attachments" in data or files:
            message["attachments"] = self._attachments_from(
                int(message["channel_id"]), data, files, list(message["attachments"])
            )
        if "flags" in data and data["flags"] is not None:
            # Only SUPPRESS_EMBEDS can be changed by an edit; EPHEMERAL stays as it was.
            message["flags"] = (int(message["flags"]) & EPHEMERAL) | (int(data["flags"]) & ~EPHEMERAL & ~LOADING)
        message["flags"] = int(message["flags"]) & ~LOADING
        message["edited_timestamp"] = iso_timestamp()
        if "content" in data:
            self._texts.append(message["content"])

    # ------------------------------------------------------------------------------------------ HTTP

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        hosted = self._hosted.get(request.match_info["tail"])
        if hosted is None:
            return web.Response(status=404, text="Not Found")
        content, content_type = hosted
        return web.Response(body=content, content_type=content_type)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        body: Any | None = None
        files: list[RecordedFile] = []
        if request.content_type.startswith("multipart/"):
            body, files = parse_multipart(request.headers.get("Content-Type", ""), raw)
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        call = RecordedCall(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            files=files,
            headers=dict(request.headers),
        )
        failure = self._take_failure(call)
        if failure is not None:
            call.status = failure.status
            response: web.StreamResponse = web.json_response(
                failure.body, status=failure.status, headers=failure.headers
            )
        else:
            try:
                status, reply = self._route(call)
            except _Reply as answer:
                status, reply = answer.status, answer.body
            call.status = status
            response = web.Response(status=204) if reply is None else web.json_response(reply, status=status)
        self.calls.append(call)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        return response

    def _take_failure(self, call: RecordedCall) -> _Failure | None:
        for failure in self._failures:
            if failure.path_contains in call.path and failure.method in {None, call.method}:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    _ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
        (method, re.compile(pattern), handler)
        for method, pattern, handler in (
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", "_interaction_callback"),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", "_webhook_execute"),
            ("GET", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", "_webhook_get"),
            ("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", "_webhook_edit"),
            (
                "DELETE",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                "_webhook_delete",
            ),
            ("GET", r"/channels/(?P<cid>\d+)", "_channel_get"),
            ("POST", r"/channels/(?P<cid>\d+)/typing", "_no_content"),
            ("GET", r"/channels/(?P<cid>\d+)/messages", "_channel_messages_list"),
            ("POST", r"/channels/(?P<cid>\d+)/messages", "_channel_message_create"),
            ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_channel_message_get"),
            ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_channel_message_edit"),
            ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", "_channel_message_delete"),
            ("POST", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/threads", "_thread_from_message"),
            ("GET", r"/users/@me", "_my_user"),
            ("GET", r"/guilds/(?P<gid>\d+)", "_guild_get"),
            ("GET", r"/gateway/bot", "_gateway_bot"),
            ("POST", r"/users/@me/channels", "_dm_channel_create"),
            ("GET", r"/oauth2/applications/@me", "_my_application"),
            ("GET", r"/applications/@me", "_my_application"),
            ("GET", r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands", "_commands_list"),
            ("PUT", r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands", "_commands_put"),
            ("POST", r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands", "_command_create"),
            (
                "GET",
                r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands/(?P<cmd>\d+)",
                "_command_get",
            ),
            (
                "PATCH",
                r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands/(?P<cmd>\d+)",
                "_command_edit",
            ),
            (
                "DELETE",
                r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands/(?P<cmd>\d+)",
                "_command_delete",
            ),
        )
    )

    def _route(self, call: RecordedCall) -> tuple[int, Any | None]:
        for method, pattern, handler in self._ROUTES:
            if method == call.method and (match := pattern.fullmatch(call.path)):
                result: tuple[int, Any | None] = getattr(self, handler)(call, **match.groupdict())
                return result
        raise _not_found()

    @staticmethod
    def _no_content(call: RecordedCall, **_: str) -> tuple[int, None]:
        return 204, None

    @staticmethod
    def _guild_get(call: RecordedCall, gid: str) -> tuple[int, Any | None]:
        """GET /guilds/{id} (hikari-wave fetches the guild when it joins a voice channel)."""
        from tests.fakes.discord_voice import guild_payload

        return 200, guild_payload(gid)

    # interactions ---------------------------------------------------------------------------------------

    def _interaction_callback(self, call: RecordedCall, iid: str, token: str) -> tuple[int, Any | None]:
        interaction = self._interaction_for(iid, token)
        if interaction.acknowledged:
            raise _Reply(400, {"message": "Interaction has already been acknowledged.", "code": 40060})
        self._check_initial_deadline(interaction)
        body = call.json if isinstance(call.json, dict) else {}
        if problems := response_problems(body):
            raise _invalid_form_body(problems)
        interaction.acknowledged = True
        message = self._apply_response(interaction, body, call.files)
        if call.query.get("with_response", "").lower() != "true":
            return 204, None
        response_type = int(body["type"])
        callback: dict[str, Any] = {"id": interaction.id, "type": interaction.type}
        if message is not None:
            callback.update(
                response_message_id=message["id"],
                response_message_loading=bool(int(message["flags"]) & LOADING),
                response_message_ephemeral=bool(int(message["flags"]) & EPHEMERAL),
            )
        reply: dict[str, Any] = {"interaction": callback}
        if response_type in {4, 5, 6, 7}:
            resource: dict[str, Any] = {"type": response_type}
            if message is not None and response_type in {4, 7}:
                resource["message"] = message
            reply["resource"] = resource
        return 200, reply

    def _webhook_message(self, app: str, token: str, mid: str) -> dict[str, Any]:
        if int(app) != self.application_id:
            raise _not_found("Unknown Webhook", 10015)
        self._check_token(token)
        if mid == "@original":
            interaction = self._interactions.get(token)
            if interaction is None or interaction.original_message_id is None:
                raise _unknown_message()
            message_id = interaction.original_message_id
        else:
            message_id = int(mid)
        message = self.messages.get(message_id)
        if message is None:
            raise _unknown_message()
        return message

    def _webhook_execute(self, call: RecordedCall, app: str, token: str) -> tuple[int, Any | None]:
        if int(app) != self.application_id:
            raise _not_found("Unknown Webhook", 10015)
        self._check_token(token)
        interaction = self._interactions.get(token)
        data = _checked_message_data(call)
        if interaction is not None and interaction.original_message_id is not None:
            original = self.messages.get(interaction.original_message_id)
            if original is not None and int(original["flags"]) & LOADING:
                # The first follow-up after a deferred response replaces the "thinking..." message.
                self._edit_message(original, data, call.files)
                return 200, original
        message = self._create_message(
            interaction.channel_id if interaction else CHANNEL_ID,
            data,
            call.files,
            guild_id=interaction.guild_id if interaction else self.guild_id,
            message_type=0,
            webhook_id=self.application_id,
            interaction_metadata=self._interaction_metadata(interaction) if interaction else None,
        )
        return 200, message

    def _webhook_get(self, call: RecordedCall, app: str, token: str, mid: str) -> tuple[int, Any | None]:
        return 200, self._webhook_message(app, token, mid)

    def _webhook_edit(self, call: RecordedCall, app: str, token: str, mid: str) -> tuple[int, Any | None]:
        message = self._webhook_message(app, token, mid)
        self._edit_message(message, _checked_message_data(call), call.files)
        return 200, message

    def _webhook_delete(self, call: RecordedCall, app: str, token: str, mid: str) -> tuple[int, Any | None]:
        message = self._webhook_message(app, token, mid)
        del self.messages[int(message["id"])]
        return 204, None

    # channels -------------------------------------------------------------------------------------------

    def add_thread(self, thread_id: int, *, parent_id: int, owner_id: int, name: str = "thread") -> dict[str, Any]:
        """A public thread in ``parent_id`` opened by ``owner_id`` (a member, or the bot)."""
        thread = _thread_object(str(thread_id), str(self.guild_id), str(parent_id), str(owner_id), name, 1440)
        self.threads[thread_id] = thread
        return thread

    def _channel_get(self, call: RecordedCall, cid: str) -> tuple[int, Any | None]:
        if int(cid) in self.threads:
            return 200, self.threads[int(cid)]
        return 200, {
            "id": cid,
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }

    def _thread_from_message(self, call: RecordedCall, cid: str, mid: str) -> tuple[int, Any | None]:
        """Start Thread from Message: the thread is a public thread channel whose id is the message's."""
        self._channel_message(cid, mid)
        body = call.json if isinstance(call.json, dict) else {}
        thread = _thread_object(
            mid,
            str(self.guild_id),
            cid,
            str(self.bot_user["id"]),
            str(body.get("name", "thread")),
            int(body.get("auto_archive_duration", 1440)),
        )
        self.threads[int(mid)] = thread
        return 201, thread

    def _channel_message(self, cid: str, mid: str) -> dict[str, Any]:
        message = self.messages.get(int(mid))
        if message is None or message["channel_id"] != cid:
            raise _unknown_message()
        return message

    def _channel_messages_list(self, call: RecordedCall, cid: str) -> tuple[int, Any | None]:
        limit = int(call.query.get("limit", "50"))
        in_channel = [m for m in self.messages.values() if m["channel_id"] == cid]
        in_channel.sort(key=lambda m: int(m["id"]), reverse=True)
        return 200, in_channel[:limit]

    def _channel_message_create(self, call: RecordedCall, cid: str) -> tuple[int, Any | None]:
        data = _checked_message_data(call)
        if not (data.get("content") or data.get("embeds") or call.files or data.get("components")):
            raise _Reply(400, {"message": "Cannot send an empty message", "code": 50006})
        return 200, self._create_message(int(cid), data, call.files, guild_id=self.guild_id)

    def _channel_message_get(self, call: RecordedCall, cid: str, mid: str) -> tuple[int, Any | None]:
        return 200, self._channel_message(cid, mid)

    def _channel_message_edit(self, call: RecordedCall, cid: str, mid: str) -> tuple[int, Any | None]:
        message = self._channel_message(cid, mid)
        self._edit_message(message, _checked_message_data(call), call.files)
        return 200, message

    def _channel_message_delete(self, call: RecordedCall, cid: str, mid: str) -> tuple[int, Any | None]:
        message = self._channel_message(cid, mid)
        del self.messages[int(message["id"])]
        return 204, None

    # identity -------------------------------------------------------------------------------------------

    def _dm_channel_create(self, call: RecordedCall) -> tuple[int, Any | None]:
        """``POST /users/@me/channels``: the bot's DM channel with a user (the same one each time)."""
        body = call.json if isinstance(call.json, dict) else {}
        recipient = str(body.get("recipient_id") or "")
        if not recipient.isdigit():
            raise _invalid_form_body(["recipient_id is required"])
        if int(recipient) in self.closed_dms:
            raise _Reply(403, {"message": "Cannot send messages to this user", "code": 50007})
        channel_id = self.dm_channels.setdefault(int(recipient), next_snowflake())
        user = {"id": recipient, "username": f"user{recipient[-4:]}", "discriminator": "0", "avatar": None}
        return 200, {"id": str(channel_id), "type": 1, "last_message_id": None, "recipients": [user]}

    def _gateway_bot(self, call: RecordedCall) -> tuple[int, Any | None]:
        """``GET /gateway/bot``: where a GatewayBot connects, one shard, sessions to spare."""
        if self.gateway_url is None:
            raise _not_found()
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

    def _my_user(self, call: RecordedCall) -> tuple[int, Any | None]:
        return 200, {
            **self.bot_user,
            "bot": True,
            "mfa_enabled": False,
            "verified": True,
            "flags": 0,
            "locale": "en-US",
        }

    def _my_application(self, call: RecordedCall) -> tuple[int, Any | None]:
        owner = {
            "id": "1100000000000000999",
            "username": "owner",
            "discriminator": "0",
            "global_name": "Owner",
            "avatar": None,
            "public_flags": 0,
        }
        return 200, {
            "id": str(self.application_id),
            "name": str(self.bot_user.get("username", "bot")),
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": {**self.bot_user, "bot": True},
            "owner": owner,
            "verify_key": self.verify_key_hex,
            "team": None,
            "flags": 0,
            "tags": [],
            "approximate_guild_count": 1,
            "approximate_user_install_count": 0,
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "integration_types_config": {
                "0": {"oauth2_install_params": {"scopes": ["applications.commands", "bot"], "permissions": "0"}},
                "1": {},
            },
        }

    # application commands -------------------------------------------------------------------------------

    def _command_scope(self, app: str, gid: str | None) -> dict[int, dict[str, Any]]:
        if int(app) != self.application_id:
            raise _not_found("Unknown Application", 10002)
        return self.commands.setdefault(int(gid) if gid else None, {})

    def _command_object(
        self, body: Mapping[str, Any], gid: str | None, command_id: int | None = None
    ) -> dict[str, Any]:
        command_type = int(body.get("type", 1))
        command: dict[str, Any] = {
            "id": str(command_id or next_snowflake()),
            "application_id": str(self.application_id),
            "version": str(next_snowflake()),
            "type": command_type,
            "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description", "") if command_type == 1 else "",
            "description_localizations": body.get("description_localizations"),
            "options": body.get("options") or [],
            "default_member_permissions": body.get("default_member_permissions"),
            "dm_permission": body.get("dm_permission", True),
            "nsfw": bool(body.get("nsfw", False)),
            "integration_types": body.get("integration_types") or [0],
            "contexts": body.get("contexts"),
            "guild_id": gid,
        }
        if gid is None:
            del command["guild_id"]
        return command

    def _commands_list(self, call: RecordedCall, app: str, gid: str | None) -> tuple[int, Any | None]:
        return 200, list(self._command_scope(app, gid).values())

    def _commands_put(self, call: RecordedCall, app: str, gid: str | None) -> tuple[int, Any | None]:
        scope = self._command_scope(app, gid)
        existing = {(c["name"], c["type"]): int(c["id"]) for c in scope.values()}
        scope.clear()
        for body in call.json or []:
            key = (body["name"], int(body.get("type", 1)))
            command = self._command_object(body, gid, existing.get(key))
            scope[int(command["id"])] = command
        return 200, list(scope.values())

    def _command_create(self, call: RecordedCall, app: str, gid: str | None) -> tuple[int, Any | None]:
        scope = self._command_scope(app, gid)
        body = call.json if isinstance(call.json, dict) else {}
        command = self._command_object(body, gid)
        scope[int(command["id"])] = command
        return 201, command

    def _command_get(self, call: RecordedCall, app: str, gid: str | None, cmd: str) -> tuple[int, Any | None]:
        command = self._command_scope(app, gid).get(int(cmd))
        if command is None:
            raise _not_found("Unknown application command", 10063)
        return 200, command

    def _command_edit(self, call: RecordedCall, app: str, gid: str | None, cmd: str) -> tuple[int, Any | None]:
        scope = self._command_scope(app, gid)
        command = scope.get(int(cmd))
        if command is None:
            raise _not_found("Unknown application command", 10063)
        merged = {**command, **(call.json if isinstance(call.json, dict) else {})}
        scope[int(cmd)] = self._command_object(merged, gid, int(cmd))
        return 200, scope[int(cmd)]

    def _command_delete(self, call: RecordedCall, app: str, gid: str | None, cmd: str) -> tuple[int, Any | None]:
        if self._command_scope(app, gid).pop(int(cmd), None) is None:
            raise _not_found("Unknown application command", 10063)
        return 204, None


def _thread_object(
    thread_id: str, guild_id: str, parent_id: str, owner_id: str, name: str, archive_minutes: int
) -> dict[str, Any]:
    """A public thread channel object (type 11) as Discord documents it."""
    return {
        "id": thread_id,
        "type": 11,
        "guild_id": guild_id,
        "parent_id": parent_id,
        "owner_id": owner_id,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": archive_minutes,
            "archive_timestamp": iso_timestamp(),
            "locked": False,
            "create_timestamp": iso_timestamp(),
        },
    }
