"""Registered chat models: the base and fine-tuned models a guild can switch to, and the backend serving each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from hypotez.storage.models import RegisteredModel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database
    from hypotez.storage.models import TrainingJob

__all__ = ["RegisteredModelRepository", "register_job_result"]


class RegisteredModelRepository:
    """Models registered for one guild, or for every guild (``guild_id`` 0)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_guild(self, guild_id: int | None) -> list[RegisteredModel]:
        """The models ``guild_id`` can use (its own and every guild's), by name."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RegisteredModel)
                .where(or_(RegisteredModel.guild_id == (guild_id or 0), RegisteredModel.guild_id == 0))
                .order_by(RegisteredModel.name)
            )
            return list(rows.all())


async def register_job_result(session: AsyncSession, job: TrainingJob) -> None:
    """Register the model a succeeded job produced (``job.result_model``) in its guild, in ``session``'s
    transaction; a model already registered under that name is left as it is."""
    exists = await session.scalar(
        select(RegisteredModel).where(
            RegisteredModel.guild_id == (job.guild_id or 0), RegisteredModel.name == job.result_model
        )
    )
    if exists is None:
        session.add(
            RegisteredModel(
                guild_id=job.guild_id or 0,
                name=job.result_model,
                backend="local" if job.trainer == "local" else "openai",
                origin="fine-tune",
                base_model=job.base_model,
                job_id=job.id,
                dataset_id=job.dataset_id,
            )
        )
