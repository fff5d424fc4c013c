"""The service's background task: clear the holds whose time is up and announce them (`slot.hold_expired`).

It runs in every replica; `handlers.expire_holds` takes each expired hold once (rows locked, others skipped),
so replicas may sweep at the same time.
"""

from __future__ import annotations

import asyncio

from cpts_platform.consumer import is_transient
from cpts_platform.db import Database
from cpts_platform.logging import get_logger
from cpts_platform.service import Runtime, background_task
from cpts_snp_dispatch import handlers

log = get_logger(__name__)


async def sweep_forever(database: Database, interval: float) -> None:
    while True:
        try:
            expired = await handlers.expire_holds(database=database)
            if expired:
                log.info("holds_expired", count=expired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the task die: the next pass tries again
            log.warning("hold_sweep_failed", error_type=type(exc).__name__, transient=is_transient(exc))
        await asyncio.sleep(interval)


def _start(runtime: Runtime):
    interval = runtime.settings.hold_sweep_interval_seconds
    return sweep_forever(runtime.database, interval) if interval > 0 else None


router = background_task("hold-sweeper", _start)
