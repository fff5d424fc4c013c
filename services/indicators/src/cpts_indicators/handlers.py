"""Commands of the indicators service, each one a unit of work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Iterable

import sqlalchemy as sa

from cpts_indicators.domain.periods import PeriodKind, parse_period, periods_from
from cpts_indicators.queries import fact_time_span
from cpts_indicators.repository import known_cpts, snapshots_table
from cpts_indicators.snapshots import Target, refresh_snapshots
from cpts_platform.db import Database


async def rebuild_snapshots(*, database: Database, kinds: Iterable[PeriodKind], threshold: int,
                            cpts_id: str | None = None, now: datetime | None = None) -> tuple[int, int, int]:
    """Recompute from the facts the snapshots of every period of every CPTS (or one) that has facts, and send
    those whose content differs from the last one sent (after a catalogue change, say): after an incremental
    run, nothing differs. Returns (CPTS, snapshots recomputed, snapshots sent)."""
    now = now or datetime.now(UTC)
    kinds = list(kinds)
    async with database.sessions() as session:
        cpts_ids = [cpts_id] if cpts_id else await known_cpts(session)
    recomputed = sent = 0
    for one in cpts_ids:
        async with database.transaction() as session:
            span = await fact_time_span(session, one)
            s = snapshots_table
            already = (await session.execute(
                sa.select(s.c.period, s.c.period_key).where(s.c.cpts_id == one))).all()
            targets: set[Target] = {(one, PeriodKind(kind), parse_period(PeriodKind(kind), key))
                                    for kind, key in already if kind in kinds}
            if span is not None:
                until = max(now, span[1])
                targets |= {(one, kind, p) for kind in kinds for p in periods_from(kind, span[0], until)}
            recomputed += len(targets)
            sent += await session.run_sync(refresh_snapshots, targets, threshold=threshold, now=now)
    return len(cpts_ids), recomputed, sent
