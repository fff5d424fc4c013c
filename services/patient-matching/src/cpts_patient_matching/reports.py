"""Who a round serves, against first come first served: the figures of the reports and of the demo.

`compare_methods` works on any round input; `territory_report` builds the input a round of a CPTS would take
now (waiting patients, GPs with capacity left, exclusions) from the service's database, without proposing
anything, and compares the exact round with the first-come-first-served baseline on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cpts_patient_matching.domain.assignment import (
    Gp,
    Patient,
    RoundResult,
    distance_km,
    greedy_fcfs,
    solve_round,
)
from cpts_patient_matching.handlers import REPORTED_GROUPS, round_input
from cpts_patient_matching.settings import Settings, current_settings
from cpts_platform.db import Database

GROUP_LABELS = {"ald": "ALD", "70+": "70 ans et plus", "c2s": "C2S"}


@dataclass(frozen=True)
class MethodFigures:
    served: int
    weighted_coverage: float
    """Sum of the priority weights of the patients served / sum over the patients waiting."""
    shares: dict[str, float]
    """Per priority group (ALD, 70+, C2S): share of the group's waiting patients who get a proposal."""
    mean_km: float


@dataclass(frozen=True)
class RoundComparison:
    patients: int
    gps: int
    capacity: int
    waiting_by_group: dict[str, int]
    exact: MethodFigures
    fcfs: MethodFigures

    def as_dict(self) -> dict:
        return {"patients": self.patients, "gps": self.gps, "capacity": self.capacity,
                "waiting_by_group": self.waiting_by_group,
                "exact": self.exact.__dict__, "fcfs": self.fcfs.__dict__}


def _figures(result: RoundResult, patients: Sequence[Patient], gps: Sequence[Gp],
             groups: Mapping[str, Iterable[str]]) -> MethodFigures:
    by_id = {p.id: p for p in patients}
    gp_by_id = {g.id: g for g in gps}
    total = sum(p.weight for p in patients)
    shares = {}
    for group in REPORTED_GROUPS:
        members = [pid for pid, facts in groups.items() if group in facts]
        shares[group] = sum(pid in result.assignments for pid in members) / len(members) if members else 0.0
    kms = [distance_km(by_id[p], gp_by_id[g]) for p, g in result.assignments.items()]
    return MethodFigures(served=result.served,
                         weighted_coverage=result.objective.weighted_served / total if total else 0.0,
                         shares=shares, mean_km=sum(kms) / len(kms) if kms else 0.0)


def compare_methods(patients: Sequence[Patient], gps: Sequence[Gp], groups: Mapping[str, Iterable[str]]
                    ) -> RoundComparison:
    """The exact round and first come first served on the same input; `groups` maps a patient id to its
    priority facts (ald, 70+, c2s...)."""
    exact, fcfs = solve_round(patients, gps), greedy_fcfs(patients, gps)
    waiting = {group: sum(1 for facts in groups.values() if group in facts) for group in REPORTED_GROUPS}
    return RoundComparison(patients=len(patients), gps=sum(1 for g in gps if g.capacity > 0),
                           capacity=sum(g.capacity for g in gps), waiting_by_group=waiting,
                           exact=_figures(exact, patients, gps, groups),
                           fcfs=_figures(fcfs, patients, gps, groups))


async def territory_report(database: Database, cpts_id: str, *, settings: Settings | None = None,
                           now: datetime | None = None) -> RoundComparison:
    """What a round of this CPTS would do now, exact against first come first served (nothing is written)."""
    settings = settings or current_settings()
    now = now or datetime.now(UTC)
    async with database.sessions() as session:
        inputs = await round_input(session, cpts_id, weights=settings.priority,
                                   default_max_distance_km=settings.default_max_distance_km, now=now)
    groups = {pid: prio.facts for pid, prio in inputs.priorities.items()}
    return compare_methods(inputs.patients, inputs.gps, groups)


def format_report(report: RoundComparison) -> str:
    """The comparison as a short French table (for the demo's output)."""
    lines = [f"{report.patients} patients en attente, {report.capacity} places chez {report.gps} médecins",
             f"{'méthode':<31}{'servis':>8}{'couverture pondérée':>22}"
             + "".join(f"{GROUP_LABELS[g]:>16}" for g in REPORTED_GROUPS) + f"{'km moyens':>11}"]
    methods = (("appariement exact", report.exact), ("premier arrivé, premier servi", report.fcfs))
    for label, figures in methods:
        lines.append(f"{label:<31}{figures.served:>8}{figures.weighted_coverage:>22.1%}"
                     + "".join(f"{figures.shares[g]:>16.1%}" for g in REPORTED_GROUPS)
                     + f"{figures.mean_km:>11.2f}")
    return "\n".join(lines)
