"""Alembic environment: migrations run on a connection hypotez hands in (async engines, any dialect)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config

from hypotez.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        # Developers generating a revision: `alembic -c <ini with a sync sqlalchemy.url> revision --autogenerate`.
        # The bot itself always hands in a connection (hypotez.storage.Database.upgrade).
        engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.")
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            run_migrations_online()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
