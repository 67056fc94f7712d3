"""The bot's replies, the Discord messages that carry them, and the conversations they form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from hypotez.storage.models import BotReply, ReplyMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import ColumnElement

    from hypotez.storage.db import Database

__all__ = ["MessagePart", "ReplyRepository"]


def _seen_by(user_id: int | None) -> ColumnElement[bool]:
    """A reply ``user_id`` saw: a public one, or one of their own private ones."""
    return or_(BotReply.private.is_(False), BotReply.author_id == (user_id or 0))


@dataclass(frozen=True, slots=True)
class MessagePart:
    """Where one Discord message's text sits in a reply."""

    message_id: int
    start: int
    end: int


class ReplyRepository:
    """The bot's replies, the messages that carry them, and the conversations they form."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, reply: BotReply, parts: Sequence[MessagePart]) -> BotReply:
        """Store a reply that was delivered, with the messages carrying it (the first is ``message_id``)."""
        async with self._db.session() as session, session.begin():
            if parts:
                reply.message_id = parts[0].message_id
            session.add(reply)
            await session.flush()
            for index, part in enumerate(parts):
                session.add(
                    ReplyMessage(
                        message_id=part.message_id, reply_id=reply.id, part=index, start=part.start, end=part.end
                    )
                )
        return reply

    async def get(self, reply_id: int) -> BotReply | None:
        async with self._db.session() as session:
            return await session.get(BotReply, reply_id)

    async def by_message(
        self, message_id: int, *, guild_id: int | None, user_id: int | None = None, channel_id: int | None = None
    ) -> tuple[BotReply, ReplyMessage] | None:
        """The reply a Discord message belongs to, and that message's part — only a reply given in
        ``guild_id``; outside servers (``guild_id`` ``None``) only a reply in the caller's own DM or group DM
        ``channel_id`` (everyone there sees it), or one of ``user_id``'s own replies.  A private reply (``/chat
        private:true``) only its author saw is found for ``user_id`` alone."""
        query = (
            select(BotReply, ReplyMessage)
            .join(ReplyMessage, ReplyMessage.reply_id == BotReply.id)
            .where(ReplyMessage.message_id == message_id, _seen_by(user_id))
        )
        if guild_id is not None:
            query = query.where(BotReply.guild_id == guild_id)
        else:
            visible = BotReply.author_id == (user_id or 0)
            if channel_id is not None:
                visible = or_(visible, BotReply.channel_id == channel_id)
            query = query.where(BotReply.guild_id.is_(None), visible)
        async with self._db.session() as session:
            row = (await session.execute(query)).first()
        return (row[0], row[1]) if row is not None else None

    async def parts(self, reply_id: int) -> list[ReplyMessage]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ReplyMessage).where(ReplyMessage.reply_id == reply_id).order_by(ReplyMessage.part)
            )
            return list(rows.all())

    async def thread(self, reply: BotReply, *, limit: int = 50) -> list[BotReply]:
        """The conversation ending with ``reply``, oldest first (at most ``limit`` replies)."""
        chain = [reply]
        async with self._db.session() as session:
            current = reply
            while current.parent_id is not None and len(chain) < limit:
                parent = await session.get(BotReply, current.parent_id)
                if parent is None:
                    break
                chain.append(parent)
                current = parent
        chain.reverse()
        return chain

    async def latest_in_thread(
        self, thread_id: int, *, guild_id: int, user_id: int, private: bool = False
    ) -> BotReply | None:
        """The newest turn of the conversation thread ``thread_id`` of ``guild_id`` holds: the replies given in
        it, or the reply it was opened on (a thread opened on a message has that message's id).  Only public
        replies continue; a private turn (``private``) may also continue ``user_id``'s own private replies."""
        seen = BotReply.private.is_(False)
        if private:
            seen = or_(seen, BotReply.author_id == user_id)
        opened_on = select(ReplyMessage.reply_id).where(ReplyMessage.message_id == thread_id)
        async with self._db.session() as session:
            return await session.scalar(
                select(BotReply)
                .where(
                    or_(BotReply.channel_id == thread_id, BotReply.id.in_(opened_on)),
                    BotReply.guild_id == guild_id,
                    seen,
                )
                .order_by(BotReply.id.desc())
                .limit(1)
            )

    async def recent_for_author(self, channel_id: int, author_id: int, *, limit: int = 25) -> list[BotReply]:
        """A member's most recent replies in a channel, newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(BotReply)
                .where(BotReply.channel_id == channel_id, BotReply.author_id == author_id)
                .order_by(BotReply.id.desc())
                .limit(limit)
            )
            return list(rows.all())
