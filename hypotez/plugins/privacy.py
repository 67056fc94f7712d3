"""``/privacy``: a member's own data — a copy of it (``export``), or all of it deleted (``forget-me``).

- **forget-me** asks first (Confirm / Keep, seen by the member only). Confirm deletes everything the bot keeps of
  theirs, in every server and in direct messages (see :mod:`hypotez.storage.repositories.privacy` for the tables),
  removes their examples from every dataset version not archived and their recordings from disk, and says which
  exports and archived versions remain and which training jobs used their data: a trained model cannot un-learn.
- **export** sends their data as a zip (one JSONL file per kind, their recordings when they fit), ephemerally and
  within the upload limit of the interaction.
- **Administrators** (``admin``, in a server) run the same for a member who left: ``/privacy forget member:`` and
  ``/privacy export member:`` cover that server's data of the member only; the member's own ``forget-me`` covers
  everything of theirs everywhere.

The buttons are stateless: the Confirm id names the member and the scope (``0``: everywhere, else the server), and
every press checks it against who pressed and where — only the member confirms their own deletion, only an
administrator of that server a server's — so any replica answers it.  Every export and deletion is audit-logged;
the entry of a deletion names no one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError
from hypotez.keys import Key, build_key
from hypotez.permissions import Caller
from hypotez.plugins._attachments import send_limit
from hypotez.plugins._checks import EVERYWHERE, OUTSIDE_SERVER, require, require_in_server
from hypotez.plugins._components import ComponentContext, button, button_row, handler
from hypotez.plugins._delivery import NO_MENTIONS
from hypotez.plugins._errors import fit
from hypotez.storage.db import Database
from hypotez.storage.files import DataDirectory, human_size
from hypotez.storage.repositories import AuditLog, PrivacyRepository, Scope
from hypotez.storage.repositories.privacy import build_export, list_exports, remove_audio

if TYPE_CHECKING:
    from hypotez.storage.repositories import ForgetReport

__all__ = ["UNLEARN", "describe_forgotten", "loader"]

loader = lightbulb.Loader()

#: What every deletion says about trained models.
UNLEARN: Final = (
    "**Trained models cannot un-learn.** A model already trained on this data keeps what it learned from it; "
    "deleting the data does not change that model (only models trained from now on are free of it)."
)
_LABELS: Final = {
    "bot_replies": "replies of the bot to you (with your messages)",
    "reply_messages": "reply messages",
    "corrections": "corrections",
    "feedback": "ratings and feedback",
    "review_items": "review items",
    "review_votes": "review votes on them",
    "review_votes.anonymised": "of your review votes on others' items, anonymised",
    "transcripts": "transcripts",
    "transcript_corrections": "transcript corrections",
    "arena_votes": "arena votes",
    "arena_matches": "arena matches you started",
    "member_preferences": "preferences",
    "cooldowns": "cooldown counters",
    "dataset_examples": "dataset examples",
    "job_examples": "examples kept with training jobs",
    "evaluation_cases": "evaluation cases",
    "training_jobs.anonymised": "training jobs you started, your id removed",
    "evaluation_runs.anonymised": "evaluation runs you started, your id removed",
    "audit_log.anonymised": "audit log entries kept with your id removed",
}
_LISTED: Final = 8
#: The bot's own messages deleted from Discord at most per deletion (each is one REST call).
_MAX_POSTS: Final = 100

privacy = lightbulb.Group("privacy", "Your data here: a copy of it, or all of it deleted", **EVERYWHERE)


def _listed(items: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


async def _delete_posts(rest: hikari.api.RESTClient, posts: list[tuple[int, int]]) -> int:
    """Delete the bot's messages showing deleted data (review posts, arena matches); returns how many went.
    One that is gone already, or that the bot may no longer reach, is left (nothing else can be done)."""
    removed = 0
    for channel_id, message_id in posts[:_MAX_POSTS]:
        try:
            await rest.delete_message(channel_id, message_id)
        except hikari.HikariError:
            continue
        removed += 1
    return removed


def describe_forgotten(
    report: ForgetReport, *, removed_audio: int, exports: list[str], whose: str, removed_posts: int = 0
) -> str:
    """The answer to a confirmed deletion: what went, what remains and why, and that models cannot un-learn."""
    done = [f"{count} {_LABELS.get(table, table)}" for table, count in report.counts.items() if count]
    lines = [f"Deleted {whose} data: " + ("; ".join(done) if done else "there was nothing stored.")]
    if removed_audio:
        lines.append(f"Recordings removed from disk: {removed_audio}.")
    if removed_posts:
        lines.append(f"The bot's messages showing it removed (review posts, arena matches): {removed_posts}.")
    if report.datasets:
        lines.append(
            "Removed from dataset versions: "
            + ", ".join(f"`{name}` ({count})" for name, count in sorted(report.datasets.items()))
            + "."
        )
    if report.archived:
        lines.append(
            f"Archived dataset versions are kept as they are and still hold some of it: {_listed(report.archived)}."
        )
    if exports:
        lines.append(
            "Exported files made since then that may still hold some of it (not archived; a server administrator "
            f"can delete them): {_listed(exports)}. Archives (`archive/`) are kept as they are."
        )
    else:
        lines.append("Archives (`archive/`) are kept as they are.")
    lines.append(UNLEARN)
    if report.jobs:
        lines.append(f"Training jobs that used this data: {_listed(report.jobs)}.")
    return fit("\n".join(lines))


def _confirm_row(member_id: int, scope: int) -> hikari.api.MessageActionRowBuilder:
    return button_row(
        button(
            build_key(Key.PRIVACY_FORGET_CONFIRM, member_id, scope), label="Delete it", style=hikari.ButtonStyle.DANGER
        ),
        button(build_key(Key.PRIVACY_FORGET_KEEP, member_id, scope), label="Keep it"),
    )


@privacy.register
class ForgetMe(
    lightbulb.SlashCommand,
    name="forget-me",
    description="Delete everything the bot keeps of yours, everywhere (asks first)",
    hooks=[require(Capability.CHAT)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller) -> None:
        await ctx.respond(
            "Delete everything the bot keeps of yours, in every server and in direct messages? Your messages to "
            "the bot and its replies, corrections, ratings, review items, transcripts and recordings, arena votes "
            "and matches, preferences — and their examples in datasets that are not archived. This cannot be "
            f"undone.\n{UNLEARN}",
            components=[_confirm_row(caller.user_id, 0)],
            ephemeral=True,
        )


@privacy.register
class Forget(
    lightbulb.SlashCommand,
    name="forget",
    description="Administrators: delete this server's data of a member (e.g. one who left); asks first",
    hooks=[require_in_server(Capability.ADMIN)],
):
    member = lightbulb.user("member", "The member whose data in this server is deleted")

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller) -> None:
        assert caller.guild_id is not None  # the hook refused direct messages
        await ctx.respond(
            f"Delete everything this server keeps of <@{self.member.id}>: their messages to the bot and its replies, "
            "corrections, ratings, review items, transcripts and recordings, arena votes and matches here, and "
            "their examples in this server's datasets that are not archived? Their data in other servers stays "
            f"(they can delete it all with `/privacy forget-me`). This cannot be undone.\n{UNLEARN}",
            components=[_confirm_row(int(self.member.id), caller.guild_id)],
            ephemeral=True,
            **NO_MENTIONS,
        )


def _scope_of_press(ctx: ComponentContext, caller: Caller) -> Scope:
    """The deletion a Confirm or Keep press names, if the presser may decide it."""
    member_id, guild_id = ctx.key.int_arg(0), ctx.key.int_arg(1)
    if guild_id == 0:
        if caller.user_id != member_id:
            raise InvalidInputError(
                "Only the member whose data this is can confirm its deletion; nothing was deleted. "
                "To delete your own data, use `/privacy forget-me`."
            )
        return Scope(member_id)
    if caller.guild_id != guild_id:
        raise InvalidInputError("This confirmation belongs to another server; nothing was deleted.")
    caller.require(Capability.ADMIN)
    return Scope(member_id, guild_id)


@handler(loader, Key.PRIVACY_FORGET_CONFIRM, capability=Capability.CHAT, arity=(2,))
async def confirm_forget(
    ctx: ComponentContext, caller: Caller, db: Database, data_dir: DataDirectory, audit: AuditLog
) -> None:
    scope = _scope_of_press(ctx, caller)
    await ctx.defer(edit=True)
    report = await PrivacyRepository(db).forget(scope)
    removed = await asyncio.to_thread(remove_audio, data_dir, report.audio)
    unposted = await _delete_posts(ctx.client.rest, report.posts)
    exports = await asyncio.to_thread(list_exports, data_dir, report.guilds, report.since)
    own = scope.guild_id is None
    await audit.record(
        "privacy.forget",
        guild_id=scope.guild_id if scope.guild_id is not None else caller.guild_id,
        actor_id=None if own else caller.user_id,  # a member's own deletion leaves no trace of who they were
        target="a forgotten member",
        details={
            "scope": "everywhere" if own else "server",
            "rows": {k: v for k, v in report.counts.items() if v},
            "recordings": removed,
            "messages": unposted,
        },
    )
    whose = "your" if own else f"<@{scope.user_id}>'s (this server's)"
    text = describe_forgotten(report, removed_audio=removed, exports=exports, whose=whose, removed_posts=unposted)
    await ctx.respond(text, components=[], edit=True, **NO_MENTIONS)


@handler(loader, Key.PRIVACY_FORGET_KEEP, capability=Capability.CHAT, arity=(2,))
async def keep_data(ctx: ComponentContext, caller: Caller) -> None:
    _scope_of_press(ctx, caller)
    await ctx.respond("Nothing was deleted.", components=[], edit=True)


@privacy.register
class Export(
    lightbulb.SlashCommand,
    name="export",
    description="A copy of your data as a file (administrators: a member's data in this server)",
    hooks=[require(Capability.CHAT)],
):
    member = lightbulb.user(
        "member", "Administrators: this server's data of a member (e.g. one who left)", default=None
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        db: Database,
        data_dir: DataDirectory,
        settings: Settings,
        audit: AuditLog,
    ) -> None:
        if self.member is None or int(self.member.id) == caller.user_id:
            scope = Scope(caller.user_id)
            note = (
                "Your data kept by hypotez, everywhere: one JSON object a line in each file, your recordings under "
                "audio/ when they fitted.\n"
            )
        else:
            if caller.guild_id is None:
                raise InvalidInputError(OUTSIDE_SERVER)
            caller.require(Capability.ADMIN)
            scope = Scope(int(self.member.id), caller.guild_id)
            note = f"The data server {caller.guild_id} keeps of member {self.member.id}: one JSON object a line.\n"
        await ctx.defer(ephemeral=True)
        data = await PrivacyRepository(db).export(scope)
        limit = send_limit(ctx.interaction, settings)
        packed, left_out = await asyncio.to_thread(build_export, data, data_dir, limit=limit, note=note)
        if len(packed) > limit:
            raise InvalidInputError(
                f"The export is {human_size(len(packed))}, over the {human_size(limit)} this reply can carry. "
                "Ask the bot's operator for it (`hypotez` keeps it in its database)."
            )
        await audit.record(
            "privacy.export",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=None if scope.guild_id is None else f"member {scope.user_id}",
            details={"scope": "everywhere" if scope.guild_id is None else "server"},
        )
        counts = ", ".join(f"{len(rows)} {name.replace('_', ' ')}" for name, rows in data.sections.items())
        extra = f" {len(left_out)} recordings did not fit and are listed in the file." if left_out else ""
        whose = "Your data" if scope.guild_id is None else f"This server's data of <@{scope.user_id}>"
        await ctx.respond(
            fit(f"{whose}: {counts}.{extra}"),
            attachment=hikari.Bytes(packed, f"hypotez-data-{scope.user_id}.zip"),
            ephemeral=True,
            **NO_MENTIONS,
        )


loader.command(privacy)
