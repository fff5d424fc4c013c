"""A minimal ARS consumer of the indicators' snapshots: read the `indicators` topic, print every snapshot.

    .venv/bin/python examples/ars_consumer.py                              # localhost:9092, from the start
    .venv/bin/python examples/ars_consumer.py --bootstrap-servers kafka:9092 --group ars-69 --cpts 690049999
    .venv/bin/python examples/ars_consumer.py --topic-prefix b1234abcd. --once   # what is there, then exit

What an ARS receives (`fr.cpts.indicators.snapshot.v1`, CloudEvents in binary mode: the attributes are
Kafka headers `ce_*`, the value is the JSON payload, the key is the CPTS's FINESS):

- one snapshot per CPTS and period (`period` day/week/month/quarter/year, `period_key` e.g. `2026-11`)
  each time its published content changes; `sequence` orders the snapshots of one CPTS and period, so
  keep the highest one seen (a redelivered or late older snapshot must not overwrite a newer one);
- every indicator of the catalogue (`catalogue_version`), each with its total and breakdowns;
- small cells masked: a count from 1 to `small_cell_threshold` - 1 (and any cell that would let one be
  recomputed by difference) arrives as `"value": null, "masked": true`, with no event time. Print it as
  masked, never as zero: zero is a real value (`"value": 0, "masked": false`).

The script uses only aiokafka and the standard library (no `cpts_*` package), as an ARS system would.
It commits its offsets (consumer group `--group`), so a restart resumes where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer

SNAPSHOT_TYPE = "fr.cpts.indicators.snapshot.v1"


def cell_text(cell: dict) -> str:
    """A value as a reader should see it: masked cells say so."""
    if cell.get("masked"):
        return "masqué"
    value = cell.get("value")
    if value is None:
        return "n/d"  # not computable for the period (e.g. a share of nothing), not a masked count
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def show(snapshot: dict, *, breakdowns: bool) -> str:
    head = (f"CPTS {snapshot['cpts_id']}  {snapshot['period']} {snapshot['period_key']}  "
            f"séquence {snapshot['sequence']}{'  (définitif)' if snapshot.get('final') else ''}  "
            f"catalogue {snapshot['catalogue_version']}, seuil {snapshot['small_cell_threshold']}")
    lines = [head]
    for indicator in snapshot["indicators"]:
        lines.append(f"  {indicator['indicator_id']:<55} {cell_text(indicator):>10}  {indicator['unit']}")
        if breakdowns:
            for breakdown in indicator.get("breakdowns", []):
                cells = ", ".join(f"{c['category']}={cell_text(c)}" for c in breakdown["cells"])
                lines.append(f"      par {breakdown['attribute']}: {cells}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        args.topic_prefix + "indicators", bootstrap_servers=args.bootstrap_servers, group_id=args.group,
        auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    latest: dict[tuple[str, str, str], int] = {}
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches and args.once:
                return
            for records in batches.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers or ()}
                    if headers.get("ce_type") != SNAPSHOT_TYPE:
                        continue
                    snapshot = json.loads(record.value)
                    if args.cpts and snapshot["cpts_id"] not in args.cpts:
                        continue
                    key = (snapshot["cpts_id"], snapshot["period"], snapshot["period_key"])
                    if snapshot["sequence"] <= latest.get(key, 0):
                        continue  # older than one already shown
                    latest[key] = snapshot["sequence"]
                    print(show(snapshot, breakdowns=args.breakdowns), flush=True)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", default="localhost:9092")
    parser.add_argument("--topic-prefix", default="",
                        help="namespace of the topics (CPTS_KAFKA_TOPIC_PREFIX)")
    parser.add_argument("--group", default="ars-example", help="consumer group (offsets kept per group)")
    parser.add_argument("--cpts", action="append", help="only this CPTS (FINESS); repeatable")
    parser.add_argument("--breakdowns", action="store_true", help="also print the breakdown cells")
    parser.add_argument("--once", action="store_true", help="exit when nothing new arrives for a second")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        asyncio.run(run(parse(argv)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
