"""Benchmark of a matching round (`solve_round`) the size of a département, against first come first served.

    .venv/bin/python bench/matching_round.py [--patients N] [--gps N] [--seed S] [--quick]

Generates a seeded instance in the Rhône (69): GPs and waiting patients placed at commune points (communes
drawn in proportion to their population), a documented mix of priorities, mobilities, children, home visits
and exclusions (see `generate`). Then times the exact solver (`solve_round`: grouping, network, OR-Tools
min-cost flow, disaggregation, check by `evaluate`) and the greedy baseline (`greedy_fcfs`) on it, and reports
who is served. Targets: solve < 10 s and peak RSS < 1 GB; the exit status is 1 when one is missed. The table
goes to stdout, the figures to `bench/results/matching_round.json` (git-ignored). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from cpts_geo import Commune, communes, haversine_km
from cpts_patient_matching.domain.assignment import (
    Gp,
    Patient,
    RoundResult,
    distance_km,
    greedy_fcfs,
    solve_round,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "matching_round.json"
TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 1024
DEPARTEMENT = "69"
ROUND_DATE = date(2026, 1, 5)

# Priority mix: share of the waiting list and base weight; weight = base + days on the waiting list.
CATEGORIES = {"ALD": (0.30, 1000), "70+": (0.20, 500), "C2S": (0.10, 300), "other": (0.40, 100)}
MAX_WAITING_DAYS = 540
MOBILITY_KM = (5, 30)  # whole km, uniform
CHILD_SHARE = 0.15  # of all patients, drawn among those under 70
HOME_VISIT_SHARE = 0.05
EXCLUSION_SHARE = 0.05  # patients with 1 to 3 excluded GPs among the 10 nearest to their commune
GP_CAPACITY = (0, 10)  # new patients this round, uniform
GP_TAKES_CHILDREN = 0.90
GP_HOME_VISITS = 0.40


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def commune_points() -> list[Commune]:
    """The communes of the département with a point; Lyon is counted through its arrondissements only."""
    items = [c for c in communes() if c.departement == DEPARTEMENT and c.lat is not None and c.population > 0]
    split = {c.name.split(" ")[0] for c in items if c.kind == "ARM"}
    return [c for c in items if not (c.kind == "COM" and c.name in split)]


def generate(patient_count: int, gp_count: int, seed: int) -> tuple[list[Patient], list[Gp], dict[str, str]]:
    """A seeded round: patients, GPs and the priority category of every patient."""
    rng = random.Random(seed)
    places = commune_points()
    population = [c.population for c in places]
    gps = []
    for i, practice in enumerate(rng.choices(places, population, k=gp_count)):
        gps.append(Gp(id=f"gp{i:05d}", capacity=rng.randint(*GP_CAPACITY), lat=practice.lat, lon=practice.lon,
                      takes_children=rng.random() < GP_TAKES_CHILDREN,
                      does_home_visits=rng.random() < GP_HOME_VISITS))
    nearest = {}
    for c in places:
        by_distance = sorted(gps, key=lambda gp: (haversine_km(c.lat, c.lon, gp.lat, gp.lon), gp.id))
        nearest[c.insee] = [gp.id for gp in by_distance[:10]]
    names = list(CATEGORIES)
    shares = [CATEGORIES[name][0] for name in names]
    child_share = CHILD_SHARE / (1 - CATEGORIES["70+"][0])
    patients, category = [], {}
    for i, home in enumerate(rng.choices(places, population, k=patient_count)):
        kind = rng.choices(names, shares)[0]
        days = rng.randint(0, MAX_WAITING_DAYS)
        excluded: list[str] = []
        if rng.random() < EXCLUSION_SHARE:
            excluded = rng.sample(nearest[home.insee], rng.randint(1, 3))
        patient = Patient(
            id=f"pt{i:06d}", weight=CATEGORIES[kind][1] + days, lat=home.lat, lon=home.lon,
            max_distance_km=float(rng.randint(*MOBILITY_KM)),
            needs_home_visit=rng.random() < HOME_VISIT_SHARE,
            is_child=kind != "70+" and rng.random() < child_share, excluded_gps=frozenset(excluded),
            tie_break=(ROUND_DATE - timedelta(days=days)).isoformat())
        patients.append(patient)
        category[patient.id] = kind
    return patients, gps, category


def figures(result: RoundResult, seconds: float, patients: list[Patient], gps: list[Gp],
            category: dict[str, str]) -> dict:
    """What a method achieved: time, patients served, weighted coverage, share served per category."""
    by_id = {p.id: p for p in patients}
    gp_by_id = {gp.id: gp for gp in gps}
    waiting = Counter(category.values())
    served = Counter(category[patient_id] for patient_id in result.assignments)
    km = [distance_km(by_id[p], gp_by_id[g]) for p, g in result.assignments.items()]
    return {
        "seconds": round(seconds, 2), "served": result.served,
        "weighted_coverage": round(result.objective.weighted_served / sum(p.weight for p in patients), 4),
        "served_share": {kind: round(served[kind] / waiting[kind], 4) if waiting[kind] else None
                         for kind in CATEGORIES},
        "mean_km": round(sum(km) / len(km), 2) if km else None,
        "objective": {"weighted_served": result.objective.weighted_served,
                      "total_distance_units": result.objective.total_distance_units,
                      "spread_cost": result.objective.spread_cost},
    }


def print_table(result: dict) -> None:
    print(f"\nmatching round - {result['patients']:,} patients, {result['gps']:,} GPs (capacity "
          f"{result['capacity']:,}), département {DEPARTEMENT}, seed {result['seed']}, {result['cpus']} CPUs")
    print(f"targets: exact solve < {TARGET_SECONDS:.0f} s, peak RSS < {TARGET_PEAK_MB} MB")
    header = (f"{'method':<12} {'seconds':>8} {'served':>7} {'weighted':>9} {'ALD':>6} {'70+':>6} {'C2S':>6} "
              f"{'other':>6} {'mean km':>8}")
    print(header)
    print("-" * len(header))
    for label, key in (("exact", "exact"), ("greedy FCFS", "greedy")):
        r = result[key]
        shares = " ".join(f"{r['served_share'][kind]:>6.1%}" for kind in CATEGORIES)
        print(f"{label:<12} {r['seconds']:>8.2f} {r['served']:>7,} {r['weighted_coverage']:>9.1%} {shares} "
              f"{r['mean_km'] or 0:>8.2f}")
    print(f"\npeak RSS {result['peak_rss_mb']:.0f} MB (process, after the exact solve); "
          f"verdict {result['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--gps", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="5,000 patients and 200 GPs")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.gps = 5_000, 200

    started = time.perf_counter()
    patients, gps, category = generate(args.patients, args.gps, args.seed)
    seconds = time.perf_counter() - started
    print(f"generated {len(patients):,} patients and {len(gps):,} GPs in {seconds:.1f} s", file=sys.stderr)

    started = time.perf_counter()
    exact = solve_round(patients, gps)
    exact_seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    started = time.perf_counter()
    greedy = greedy_fcfs(patients, gps)
    greedy_seconds = time.perf_counter() - started

    passed = exact_seconds < TARGET_SECONDS and peak < TARGET_PEAK_MB
    result = {
        "patients": len(patients), "gps": len(gps), "capacity": sum(gp.capacity for gp in gps),
        "seed": args.seed, "cpus": os.cpu_count(),
        "exact": figures(exact, exact_seconds, patients, gps, category),
        "greedy": figures(greedy, greedy_seconds, patients, gps, category),
        "peak_rss_mb": round(peak), "targets": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_PEAK_MB},
        "verdict": "PASS" if passed else "FAIL",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
