"""Daily token budgets: how many tokens a server, and each member, may spend on the model per day (UTC).

The day's use is summed from the stored replies (:class:`~hypotez.storage.repositories.UsageRepository`), so every
replica sharing the database counts the same tokens.  A budget is checked before a request: the request that
crosses it is answered (its tokens are not known in advance), the next one is refused until the day ends.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from hypotez.errors import InvalidInputError
from hypotez.storage.repositories.usage import day_start

if TYPE_CHECKING:
    from hypotez.storage.repositories import UsageRepository

__all__ = ["TokenBudgetError", "TokenBudgets"]


class TokenBudgetError(InvalidInputError):
    """A request refused because today's token budget of the server or the member is spent."""

    def __init__(self, *, server: bool, budget: int, resets_at: dt.datetime) -> None:
        who = "This server has" if server else "You have"
        stamp = int(resets_at.timestamp())
        super().__init__(
            f"{who} used today's budget of {budget:,} tokens. It resets at midnight UTC (<t:{stamp}:R>).",
        )
        self.server = server
        self.budget = budget
        self.resets_at = resets_at


class TokenBudgets:
    """The budgets in force (0: none) and the check against today's use."""

    def __init__(self, usage: UsageRepository, *, per_server: int = 0, per_member: int = 0) -> None:
        self.usage = usage
        self.per_server = per_server
        self.per_member = per_member

    async def check(self, guild_id: int | None, author_id: int, *, now: dt.datetime | None = None) -> None:
        """Raise :class:`TokenBudgetError` when the server's (in a server) or the member's budget is spent."""
        since = day_start(now)
        resets = since + dt.timedelta(days=1)
        if self.per_server and guild_id is not None:
            used = await self.usage.tokens_since(since, guild_id=guild_id)
            if used >= self.per_server:
                raise TokenBudgetError(server=True, budget=self.per_server, resets_at=resets)
        if self.per_member:
            used = await self.usage.tokens_since(since, author_id=author_id)
            if used >= self.per_member:
                raise TokenBudgetError(server=False, budget=self.per_member, resets_at=resets)

    async def left(self, guild_id: int | None, author_id: int, *, now: dt.datetime | None = None) -> dict[str, int]:
        """Tokens left today of each budget in force (``server``, ``member``)."""
        since = day_start(now)
        left: dict[str, int] = {}
        if self.per_server and guild_id is not None:
            left["server"] = max(0, self.per_server - await self.usage.tokens_since(since, guild_id=guild_id))
        if self.per_member:
            left["member"] = max(0, self.per_member - await self.usage.tokens_since(since, author_id=author_id))
        return left
