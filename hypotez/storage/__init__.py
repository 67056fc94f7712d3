"""Storage: SQLAlchemy models, repositories and Alembic migrations."""

from __future__ import annotations

from hypotez.storage.db import Database, MigrationState

__all__ = ["Database", "MigrationState"]
