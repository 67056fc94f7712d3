"""``/usage``: tokens and requests over the last days, from the stored replies — a member's own, or (for the
server's administrators) the server's by member, channel and model — and what is left of today's budgets."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.ml.assistant import Assistant
from hypotez.ml.budgets import TokenBudgets
from hypotez.permissions import Caller
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.storage.models import utcnow
from hypotez.storage.repositories import UsageRepository
from hypotez.storage.repositories.usage import day_start

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from hypotez.storage.repositories import UsageRow

loader = lightbulb.Loader()

#: Rows shown per table (Discord's embed fields hold 1,024 characters).
_ROWS = 10


def _table(rows: Sequence[UsageRow], name: Callable[[str], str]) -> str:
    if not rows:
        return "—"
    lines = [f"{name(row.key)}: **{row.tokens:,}** tokens · {row.requests:,} requests" for row in rows[:_ROWS]]
    return "\n".join(lines)[:1024]


def _budget_lines(left: dict[str, int], budgets: TokenBudgets) -> list[str]:
    resets = int((day_start() + dt.timedelta(days=1)).timestamp())
    lines: list[str] = []
    if "server" in left:
        lines.append(f"This server: {left['server']:,} of {budgets.per_server:,} tokens left today")
    if "member" in left:
        lines.append(f"You: {left['member']:,} of {budgets.per_member:,} tokens left today")
    if lines:
        lines.append(f"Budgets reset at midnight UTC (<t:{resets}:R>).")
    return lines


@loader.command
class Usage(
    lightbulb.SlashCommand,
    name="usage",
    description="Tokens and requests used with the model",
    hooks=[require(Capability.CHAT)],
    **EVERYWHERE,
):
    days = lightbulb.integer("days", "How many days back (default 7)", default=7, min_value=1, max_value=365)
    scope = lightbulb.string(
        "scope",
        "Yours, or the whole server's (administrators)",
        choices=[lightbulb.Choice("mine", "me"), lightbulb.Choice("this server", "server")],
        default="me",
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        usage: UsageRepository,
        budgets: TokenBudgets,
        assistant: Assistant,
    ) -> None:
        server = self.scope == "server"
        if server:
            if caller.guild_id is None:
                raise InvalidInputError("A server's usage is shown in that server; here you can see your own.")
            caller.require(Capability.ADMIN)
        await ctx.defer(ephemeral=True)
        since = utcnow() - dt.timedelta(days=self.days)
        author = None if server else caller.user_id
        by_model = await usage.breakdown("model", since=since, guild_id=caller.guild_id, author_id=author)
        total_tokens = sum(r.tokens for r in by_model)
        total_requests = sum(r.requests for r in by_model)
        whose = "This server's" if server else "Your"
        where = "" if server else (" in this server" if caller.guild_id is not None else " in direct messages")
        embed = hikari.Embed(
            title=f"{whose} use of the model{where}, last {self.days} day{'s' if self.days != 1 else ''}",
            description=f"**{total_tokens:,}** tokens in **{total_requests:,}** requests.",
        )
        embed.add_field("By model", _table(by_model, assistant.label))
        if server:
            members = await usage.breakdown("member", since=since, guild_id=caller.guild_id)
            channels = await usage.breakdown("channel", since=since, guild_id=caller.guild_id)
            embed.add_field("By member", _table(members, lambda key: f"<@{key}>"))
            embed.add_field("By channel", _table(channels, lambda key: f"<#{key}>"))
        elif caller.guild_id is not None:
            channels = await usage.breakdown("channel", since=since, guild_id=caller.guild_id, author_id=author)
            embed.add_field("By channel", _table(channels, lambda key: f"<#{key}>"))
        budget = _budget_lines(await budgets.left(caller.guild_id, caller.user_id), budgets)
        if budget:
            embed.add_field("Daily budgets", "\n".join(budget))
        await ctx.respond(embed=embed, ephemeral=True, user_mentions=False, role_mentions=False)
