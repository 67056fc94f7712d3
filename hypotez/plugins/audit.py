"""``/audit``: this server's audit log for its administrators, newest first, filtered, paged and exportable.

The buttons are stateless: their ids carry the page and the filters, and every press reads the log of the
server it was pressed in, whatever the id says, so no id shows another server's entries.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import TYPE_CHECKING, Final

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.keys import Key, build_key
from hypotez.ml.datasets.formats import csv_cell
from hypotez.permissions import Caller
from hypotez.plugins._checks import OUTSIDE_SERVER, STAFF_IN_SERVERS, require_in_server
from hypotez.plugins._components import ComponentContext, button, button_row, handler
from hypotez.plugins._delivery import NO_MENTIONS
from hypotez.plugins._errors import fit
from hypotez.storage.models import utcnow
from hypotez.storage.repositories import AuditFilter, AuditLog
from hypotez.text import jsonl_line

if TYPE_CHECKING:
    from hypotez.keys import ParsedKey
    from hypotez.storage.models import AuditEntry

loader = lightbulb.Loader()

#: Entries per page.
PAGE_SIZE: Final = 15
#: Longest target shown on a line (the export has it whole).
_TARGET_CHARS: Final = 50
_ACTION = re.compile(r"[a-z0-9_.]{1,40}")

#: Actions in words; an action not listed is shown by its name.
ACTIONS: Final = {
    "arena.start": "started an arena match",
    "archive.create": "made an archive",
    "archive.get": "downloaded an archive",
    "capability.grant": "granted a capability",
    "capability.revoke": "revoked a capability",
    "correction.create": "corrected a reply",
    "correction.replace": "replaced a correction",
    "correction.delete": "deleted a correction",
    "dataset.archive": "archived a dataset",
    "dataset.build": "built a dataset",
    "dataset.export": "exported a dataset",
    "file.get": "downloaded a file",
    "job.start": "started training",
    "job.cancel": "cancelled a training job",
    "model.use": "switched the model",
    "prompt.set": "set the system prompt",
    "prompt.clear": "cleared the system prompt",
    "review.approve": "approved a review item",
    "review.reject": "rejected a review item",
    "review.edit": "edited and approved a review item",
    "review.needs_correction": "sent feedback for correction",
    "review.settings": "changed the review settings",
    "test.run": "evaluated a model",
    "test.compare": "compared models",
    "transcript.correct": "corrected a transcript",
    "transcript.recorrect": "re-corrected a transcript",
    "vocabulary.add": "added a vocabulary term",
    "vocabulary.remove": "removed a vocabulary term",
    "voice.settings": "changed the voice settings",
    "dataset.upload": "uploaded a dataset",
    "dataset.upload.rejected": "tried to upload a dataset that was refused",
    "dataset.select": "imported a dataset from the data directory",
    "dataset.select.rejected": "tried to import a dataset that was refused",
    "job.checkpoint.register": "registered a checkpoint as a model",
    "privacy.export": "exported a member's data",
    "privacy.forget": "deleted a member's data",
    "voice.join": "brought the bot into a voice channel",
    "voice.leave": "made the bot leave a voice channel",
}


def describe(action: str) -> str:
    """An action in words."""
    return ACTIONS.get(action, f"`{action}`")


def _filter(guild_id: int, days: int, actor_id: int, action: str, *, now: dt.datetime | None = None) -> AuditFilter:
    since = (now or utcnow()) - dt.timedelta(days=days) if days else None
    return AuditFilter(guild_id=guild_id, since=since, action=action or None, actor_id=actor_id or None)


def _line(entry: AuditEntry) -> str:
    when = f"<t:{int(entry.created_at.timestamp())}:R>"
    who = f"<@{entry.actor_id}>" if entry.actor_id is not None else "the bot"
    line = f"{when} {who} {describe(entry.action)}"
    if entry.target:
        target = entry.target.replace("`", "'").replace("\n", " ")
        if len(target) > _TARGET_CHARS:
            target = target[: _TARGET_CHARS - 1] + "…"
        line += f": `{target}`"
    return line


async def _render(
    audit: AuditLog, query: AuditFilter, page: int, args: tuple[int, int, str]
) -> tuple[str, list[hikari.api.MessageActionRowBuilder]]:
    total = await audit.count(query)
    if total == 0:
        return "No audit entries match.", []
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    page = min(max(page, 0), pages - 1)
    entries = await audit.page(query, offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    header = f"**Audit log**, page {page + 1} of {pages} ({total} entries, newest first)"
    text = fit("\n".join([header, *(_line(e) for e in entries)]))
    days, actor, action = args
    previous = button(build_key(Key.AUDIT_PAGE, page - 1, days, actor, action), label="Previous")
    following = button(build_key(Key.AUDIT_PAGE, page + 1, days, actor, action), label="Next")
    if page == 0:
        previous.set_is_disabled(True)
    if page >= pages - 1:
        following.set_is_disabled(True)
    rows = [
        button_row(previous, following),
        button_row(
            button(build_key(Key.AUDIT_EXPORT_CSV, days, actor, action), label="Export CSV"),
            button(build_key(Key.AUDIT_EXPORT_JSONL, days, actor, action), label="Export JSONL"),
        ),
    ]
    return text, rows


def _guild(caller: Caller) -> int:
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    return caller.guild_id


def _args(parsed: ParsedKey, first: int) -> tuple[int, int, str]:
    action = parsed.args[first + 2]
    if action and not _ACTION.fullmatch(action):
        raise InvalidInputError("This button is damaged or out of date. Run `/audit` again for a fresh one.")
    return parsed.int_arg(first), parsed.int_arg(first + 1), action


class Audit(
    lightbulb.SlashCommand,
    name="audit",
    description="This server's audit log: who did what",
    hooks=[require_in_server(Capability.ADMIN)],
    **STAFF_IN_SERVERS,
):
    days = lightbulb.integer("days", "Only the last N days", default=None, min_value=1, max_value=3650)
    action = lightbulb.string(
        "action", "Only this action, or a group of them (e.g. `review`)", default=None, max_length=40
    )
    member = lightbulb.user("member", "Only what this member did", default=None)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, audit: AuditLog) -> None:
        guild_id = _guild(caller)
        action = (self.action or "").strip().casefold()
        if action and not _ACTION.fullmatch(action):
            raise InvalidInputError(
                "An action is lowercase letters, digits, `_` and `.`, such as `review` or `capability.grant`."
            )
        args = (self.days or 0, int(self.member.id) if self.member else 0, action)
        text, rows = await _render(audit, _filter(guild_id, *args), 0, args)
        await ctx.respond(text, components=rows, ephemeral=True, **NO_MENTIONS)


@handler(loader, Key.AUDIT_PAGE, capability=Capability.ADMIN, arity=(4,))
async def audit_page(ctx: ComponentContext, caller: Caller, audit: AuditLog) -> None:
    guild_id = _guild(caller)
    page = ctx.key.int_arg(0)
    args = _args(ctx.key, 1)
    text, rows = await _render(audit, _filter(guild_id, *args), page, args)
    await ctx.respond(text, components=rows, edit=True, **NO_MENTIONS)


_CSV_COLUMNS: Final = ("id", "when", "actor_id", "action", "description", "target", "details")


async def _export(ctx: ComponentContext, caller: Caller, audit: AuditLog, *, jsonl: bool) -> None:
    guild_id = _guild(caller)
    query = _filter(guild_id, *_args(ctx.key, 0))
    out = io.StringIO()
    count = 0
    if not jsonl:
        out.write(",".join(_CSV_COLUMNS) + "\r\n")
    async for entry in audit.each(query):
        count += 1
        record = {
            "id": entry.id,
            "when": entry.created_at.isoformat(),
            "actor_id": str(entry.actor_id) if entry.actor_id is not None else None,
            "action": entry.action,
            "description": ACTIONS.get(entry.action, entry.action),
            "target": entry.target,
            "details": entry.details,
        }
        if jsonl:
            out.write(jsonl_line(record))
        else:
            cells = [json.dumps(v, ensure_ascii=False) if k == "details" else v for k, v in record.items()]
            out.write(",".join(_quote(csv_cell(c)) for c in cells) + "\r\n")
    name = f"audit-{guild_id}.{'jsonl' if jsonl else 'csv'}"
    data = hikari.Bytes(out.getvalue().encode("utf-8"), name)
    await ctx.respond(f"{count} audit entries.", attachment=data, ephemeral=True, **NO_MENTIONS)


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


@handler(loader, Key.AUDIT_EXPORT_CSV, capability=Capability.ADMIN, arity=(3,))
async def audit_export_csv(ctx: ComponentContext, caller: Caller, audit: AuditLog) -> None:
    await _export(ctx, caller, audit, jsonl=False)


@handler(loader, Key.AUDIT_EXPORT_JSONL, capability=Capability.ADMIN, arity=(3,))
async def audit_export_jsonl(ctx: ComponentContext, caller: Caller, audit: AuditLog) -> None:
    await _export(ctx, caller, audit, jsonl=True)


loader.command(Audit)
