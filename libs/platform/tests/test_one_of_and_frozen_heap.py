"""`one_of`: a list parameter that keeps one statement text whatever its length (an array on PostgreSQL), with
the same rows as an IN on both databases; `create_app(freeze_heap=True)`: the started service's heap is
frozen, its youngest objects collected less often."""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa

from cpts_platform.db import Database, add_platform_tables, one_of
from cpts_platform.service import YOUNG_COLLECTION_THRESHOLD
from cpts_platform.testing import running_service, settings_for
from cpts_registry.app import service as registry

metadata = sa.MetaData()
tables = add_platform_tables(metadata)
items = sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("code", sa.String(12), nullable=False))


async def test_one_of_selects_the_listed_values_with_one_statement_text(database_url):
    database = Database(database_url, tables)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(sa.insert(items), [{"id": i, "code": f"c{i}"} for i in range(50)])
        statements: list[str] = []
        sa.event.listen(database.engine.sync_engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: statements.append(statement))
        async with database.engine.connect() as connection:
            dialect = connection.dialect.name
            query = sa.select(items.c.id).where(one_of(dialect, items.c.code, "codes")).order_by(items.c.id)
            for codes, expected in ((["c3", "c1"], [1, 3]), ([f"c{i}" for i in range(0, 50, 5)], list(range(0, 50, 5))),
                                    (["nope"], []), ([], [])):
                assert (await connection.execute(query, {"codes": codes})).scalars().all() == expected
            ids = sa.select(items.c.id).where(one_of(dialect, items.c.id, "ids"))
            assert sorted((await connection.execute(ids, {"ids": [7, 9]})).scalars()) == [7, 9]
        if dialect == "postgresql":
            assert len({s for s in statements if "item.code" in s}) == 1
    finally:
        await database.dispose()


async def test_a_served_service_freezes_its_heap_once_started(tmp_path, kafka_broker, topic_prefix):
    settings = settings_for(registry, database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
                            kafka_broker=kafka_broker, topic_prefix=topic_prefix, var_dir=tmp_path)
    threshold = gc.get_threshold()
    try:
        async with running_service(registry, settings, freeze_heap=True) as client:
            assert gc.get_freeze_count() > 10_000  # modules, the communes (loaded by the warm-up), the app
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *threshold[1:])
            assert (await client.get("/healthz")).status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
