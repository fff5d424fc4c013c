"""Alembic migrations per service, run from code on the service's async engine."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cpts_platform.db import Database


def alembic_config(script_location: Path, metadata: sa.MetaData, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["target_metadata"] = metadata
    return config


async def upgrade(database: Database, script_location: Path, metadata: sa.MetaData, revision: str = "head") -> None:
    config = alembic_config(script_location, metadata, database.url)

    def run(connection: sa.Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


def run_env() -> None:
    """Body of every service's `migrations/env.py`: migrate on the connection handed over by `upgrade`."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    metadata = config.attributes.get("target_metadata")
    if connection is None:
        raise RuntimeError("run migrations with `cpts migrate`, which hands over the service's connection")
    render_as_batch = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=render_as_batch,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
