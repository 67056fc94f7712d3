"""Registered chat models: the base and fine-tuned models a guild can switch to, and the backend serving each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from hypotez.storage.models import RegisteredModel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from hypotez.storage.db import Database
    from hypotez.storage.models import TrainingJob

__all__ = ["RegisteredModelRepository", "register_job_result"]


class RegisteredModelRepository:
    """Models registered for one guild: each server sees its own alone."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_guild(self, guild_id: int | None) -> list[RegisteredModel]:
        """The models ``guild_id`` registered (its trained ones), by name; outside servers (``None``) none —
        a DM gets the base models alone, never a server's."""
        if guild_id is None:
            return []
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RegisteredModel).where(RegisteredModel.guild_id == guild_id).order_by(RegisteredModel.name)
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
