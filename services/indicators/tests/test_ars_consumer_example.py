"""`examples/ars_consumer.py` reads the snapshots the service sends and prints masked cells as masked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa

from cpts_events import KafkaRecord

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ars_consumer.py"


def load_example():
    spec = importlib.util.spec_from_file_location("ars_consumer_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_ars_example_prints_the_snapshots_sent_with_masked_cells_as_masked(
        database, kit, publish, kafka_broker, topic_prefix, capsys):
    await kit.apply(database, kit.march().events)
    async with database.sessions() as session:
        o = database.tables.outbox
        rows = (await session.execute(
            sa.select(o.c.topic, o.c.key, o.c.value, o.c.headers).order_by(o.c.id))).all()
    assert rows
    await publish(*[KafkaRecord(topic=topic, key=key, value=value,
                                headers=[(n, v.encode()) for n, v in headers])
                    for topic, key, value, headers in rows])
    example = load_example()
    await example.run(example.parse([
        "--bootstrap-servers", kafka_broker, "--topic-prefix", topic_prefix, "--group", topic_prefix + "ars",
        "--cpts", kit.CPTS, "--breakdowns", "--once"]))
    out = capsys.readouterr().out
    march = out[out.index(f"CPTS {kit.CPTS}  month 2026-03"):]
    march = march.split("\nCPTS ")[0]
    received = next(line for line in march.splitlines() if line.strip().startswith("snp.requests.received"))
    assert received.split()[1] == "18"
    assert "cpts_phone=masqué" in march  # 3 phone requests: masked, never printed as a number
    noshow = next(line for line in march.splitlines() if line.strip().startswith("snp.appointments.noshow "))
    assert "masqué" in noshow
    assert kit.OTHER_CPTS not in out  # --cpts filters
