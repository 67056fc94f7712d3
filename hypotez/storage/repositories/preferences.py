"""Members' own preferences (:class:`~hypotez.storage.models.MemberPreferences`), one row per member."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypotez.storage.models import MemberPreferences, utcnow

if TYPE_CHECKING:
    from hypotez.storage.db import Database

__all__ = ["UNSET", "PreferenceRepository"]

#: "Leave this preference as it is" (``None`` clears it).
UNSET: Any = object()


class PreferenceRepository:
    """Read and change a member's preferences."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> MemberPreferences:
        """The member's preferences (an unsaved empty row when they chose nothing)."""
        async with self._db.session() as session:
            found = await session.get(MemberPreferences, user_id)
        if found is None:
            found = MemberPreferences(user_id=user_id, review_dm=False, chat_model=None, private_replies=None)
        return found

    async def update(self, user_id: int, *, chat_model: Any = UNSET, private_replies: Any = UNSET) -> MemberPreferences:
        """Change the given preferences (``None`` clears one); the others stay as they were."""
        async with self._db.session() as session, session.begin():
            row = await session.get(MemberPreferences, user_id, with_for_update=True)
            if row is None:
                row = MemberPreferences(user_id=user_id, review_dm=False, chat_model=None, private_replies=None)
                session.add(row)
            if chat_model is not UNSET:
                row.chat_model = chat_model
            if private_replies is not UNSET:
                row.private_replies = private_replies
            row.updated_at = utcnow()
        return row

    async def clear(self, user_id: int) -> None:
        """Forget the member's chat preferences (their review notifications stay as they chose)."""
        await self.update(user_id, chat_model=None, private_replies=None)
