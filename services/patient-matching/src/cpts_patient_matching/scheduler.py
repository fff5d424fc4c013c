"""The service's background task: expire overdue proposals, refresh the priority facts once a day, run the
scheduled rounds.

It runs in every replica; what must happen once is claimed through the `scheduler_state` row of the job,
locked while it is checked and moved ahead (`handlers.claim_job`), and each round holds its CPTS's lock. The
expiry is idempotent (a conditional transition per proposal), so replicas may both sweep.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cpts_patient_matching import handlers
from cpts_patient_matching.settings import Settings, configure
from cpts_platform.consumer import is_transient
from cpts_platform.db import Database
from cpts_platform.logging import get_logger
from cpts_platform.service import Runtime, background_task

log = get_logger(__name__)

PRIORITY_REFRESH = "priority-refresh"
SCHEDULED_ROUNDS = "scheduled-rounds"


async def tick(database: Database, settings: Settings) -> dict[str, int]:
    """One pass of the background work; returns what it did (for logs and tests)."""
    done = {"expired": await handlers.expire_due(database), "reprioritised": 0, "rounds": 0}
    if await handlers.claim_job(database, PRIORITY_REFRESH, interval=timedelta(days=1)):
        done["reprioritised"] = await handlers.refresh_priorities(database, settings.priority)
    if settings.round_interval_seconds and await handlers.claim_job(
            database, SCHEDULED_ROUNDS, interval=timedelta(seconds=settings.round_interval_seconds)):
        done["rounds"] = len(await handlers.run_scheduled_rounds(database, settings))
    return done


async def run_forever(database: Database, settings: Settings) -> None:
    while True:
        try:
            done = await tick(database, settings)
            if any(done.values()):
                log.info("matching_background_tick", **done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the task die: the next tick tries again
            log.warning("matching_background_failed", error_type=type(exc).__name__,
                        transient=is_transient(exc))
        await asyncio.sleep(settings.scheduler_tick_seconds)


def _start(runtime: Runtime):
    """Inside the service's own lifespan: the event handlers get the service's settings, and the background
    task starts unless switched off (`scheduler_enabled`)."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    configure(settings)
    return run_forever(runtime.database, settings) if settings.scheduler_enabled else None


router = background_task("patient-matching-scheduler", _start)
