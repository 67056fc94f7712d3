"""What the model was used for, read from the stored replies: tokens and requests by member, channel and model,
and today's totals that the daily token budgets are checked against.  Nothing is counted twice: every reply is
stored once, with the tokens the model service reported for it (``None`` counts as 0)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select

from hypotez.storage.models import BotReply, utcnow

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from hypotez.storage.db import Database

__all__ = ["UsageGroup", "UsageRepository", "UsageRow", "day_start"]

#: How usage can be grouped.
UsageGroup = Literal["member", "channel", "model"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group's use: its key (a member or channel id, or a model id), requests and tokens."""

    key: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start (UTC midnight) of the day ``now`` falls in: daily budgets reset then."""
    moment = now or utcnow()
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class UsageRepository:
    """Sums over stored replies."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _tokens() -> ColumnElement[int]:
        return func.coalesce(
            func.sum(func.coalesce(BotReply.prompt_tokens, 0) + func.coalesce(BotReply.completion_tokens, 0)), 0
        )

    async def tokens_since(
        self, since: dt.datetime, *, guild_id: int | None = None, author_id: int | None = None
    ) -> int:
        """Tokens used since ``since`` in a server (``guild_id``) and/or by a member (``author_id``)."""
        query = select(self._tokens()).where(BotReply.created_at >= since.astimezone(dt.UTC))
        if guild_id is not None:
            query = query.where(BotReply.guild_id == guild_id)
        if author_id is not None:
            query = query.where(BotReply.author_id == author_id)
        async with self._db.session() as session:
            return int(await session.scalar(query) or 0)

    async def breakdown(
        self,
        group: UsageGroup,
        *,
        since: dt.datetime,
        guild_id: int | None,
        author_id: int | None = None,
        limit: int = 10,
    ) -> list[UsageRow]:
        """Use since ``since`` in a server (``None``: direct messages), grouped, most tokens first."""
        column = {"member": BotReply.author_id, "channel": BotReply.channel_id, "model": BotReply.model}[group]
        prompt = func.coalesce(func.sum(func.coalesce(BotReply.prompt_tokens, 0)), 0)
        completion = func.coalesce(func.sum(func.coalesce(BotReply.completion_tokens, 0)), 0)
        query = (
            select(column, func.count(), prompt, completion)
            .where(BotReply.created_at >= since.astimezone(dt.UTC))
            .where(BotReply.guild_id == guild_id if guild_id is not None else BotReply.guild_id.is_(None))
            .group_by(column)
            .order_by((prompt + completion).desc(), func.count().desc())
            .limit(limit)
        )
        if author_id is not None:
            query = query.where(BotReply.author_id == author_id)
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return [UsageRow(str(key), int(n), int(p), int(c)) for key, n, p, c in rows]
