"""`solve_round` against an independent exact oracle: a MILP solved by HiGHS (`scipy.optimize.milp`).

The oracle knows nothing of the flow model, the grouping of patients or the cost scaling: it has one binary
variable per eligible (patient, GP) pair and one binary "k-th slot used" variable per GP and k <= capacity,
and solves the three criteria one after the other (max weight; then min distance with the weight fixed; then
min spread with both fixed). Eligibility, distance units and spread increments are recomputed here from the
definitions in the module docstring. The random instances are small but dense in ties: few commune points
shared by patients and GPs, few weights, few mobility values, and exclusions of nearby GPs.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from cpts_geo import haversine_km
from cpts_patient_matching.domain.assignment import Gp, Objective, Patient, evaluate, greedy_fcfs, solve_round

# (instances, max patients, max GPs): a few hundred instances, fewer of the biggest size.
SIZES = [(300, 30, 5), (150, 80, 10), (50, 200, 20)]
CASES = [(size, seed) for size, (count, _, _) in enumerate(SIZES) for seed in range(count)]


def instance(size: int, seed: int) -> tuple[list[Patient], list[Gp]]:
    _, max_patients, max_gps = SIZES[size]
    rng = random.Random(f"{size}-{seed}")
    points = [(45.70 + rng.random() * 0.25, 4.75 + rng.random() * 0.35) for _ in range(rng.randint(1, 8))]
    gps = []
    for i in range(rng.randint(1, max_gps)):
        lat, lon = rng.choice(points)
        gps.append(Gp(id=f"g{i:02d}", capacity=rng.choice([0, 1, 1, 2, 3, 4, 6]), lat=lat, lon=lon,
                      takes_children=rng.random() < 0.7, does_home_visits=rng.random() < 0.5))
    weights = rng.choice([[100], [100, 1000], [100, 300, 500, 1000], [100, 101, 150, 300, 1000, 1003]])
    patients = []
    for i in range(rng.randint(1, max_patients)):
        lat, lon = rng.choice(points)
        near = sorted(gps, key=lambda gp: haversine_km(lat, lon, gp.lat, gp.lon))[:3]
        excluded = frozenset(rng.sample([gp.id for gp in near], rng.randint(1, len(near)))
                             if rng.random() < 0.15 else ())
        patients.append(Patient(
            id=f"p{i:03d}", weight=rng.choice(weights), lat=lat, lon=lon,
            max_distance_km=rng.choice([0.0, 3.0, 6.0, 10.0, 15.0, 30.0]),
            needs_home_visit=rng.random() < 0.15, is_child=rng.random() < 0.2, excluded_gps=excluded,
            tie_break=f"2025-01-{rng.randint(1, 9):02d}"))
    return patients, gps


def oracle(patients: list[Patient], gps: list[Gp]) -> Objective:
    pairs, distance = [], []
    for p, patient in enumerate(patients):
        for g, gp in enumerate(gps):
            km = haversine_km(patient.lat, patient.lon, gp.lat, gp.lon)
            if (km <= patient.max_distance_km and gp.capacity > 0 and gp.id not in patient.excluded_gps
                    and (gp.takes_children or not patient.is_child)
                    and (gp.does_home_visits or not patient.needs_home_visit)):
                pairs.append((p, g))
                distance.append(math.floor(km * 10 + 0.5))
    if not pairs:
        return Objective(0, 0, 0)
    slots = [(g, k) for g, gp in enumerate(gps) for k in range(1, gp.capacity + 1)]
    n_x, n = len(pairs), len(pairs) + len(slots)
    weight = np.array([patients[p].weight for p, _ in pairs] + [0] * len(slots), dtype=float)
    dist = np.array(distance + [0] * len(slots), dtype=float)
    spread = np.array([0] * n_x + [math.ceil(1000 * k / gps[g].capacity) for g, k in slots], dtype=float)
    # One patient at most one GP: sum_g x[p, g] <= 1. GP load: sum_p x[p, g] - sum_k slot[g, k] == 0.
    rows, cols, values = [], [], []
    for j, (p, g) in enumerate(pairs):
        rows += [p, len(patients) + g]
        cols += [j, j]
        values += [1, 1]
    for j, (g, _) in enumerate(slots):
        rows.append(len(patients) + g)
        cols.append(n_x + j)
        values.append(-1)
    matrix = coo_array((values, (rows, cols)), shape=(len(patients) + len(gps), n)).tocsr()
    lower = np.r_[np.full(len(patients), -np.inf), np.zeros(len(gps))]
    upper = np.r_[np.ones(len(patients)), np.zeros(len(gps))]
    constraints = [LinearConstraint(matrix, lower, upper)]
    best = []
    for cost in (-weight, dist, spread):
        result = milp(cost, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1))
        assert result.status == 0, result.message
        value = round(result.fun)
        best.append(value)
        # Fix this criterion at its optimum (integers: a half-unit slack is exact).
        constraints = [*constraints, LinearConstraint(cost[np.newaxis, :], -np.inf, value + 0.5)]
    return Objective(weighted_served=-best[0], total_distance_units=best[1], spread_cost=best[2])


@pytest.mark.parametrize(("size", "seed"), CASES)
def test_solve_round_is_optimal_for_the_lexicographic_objective(size: int, seed: int) -> None:
    patients, gps = instance(size, seed)
    result = solve_round(patients, gps)
    assert result.objective == oracle(patients, gps)
    assert evaluate(patients, gps, result.assignments) == result.objective
    assert greedy_fcfs(patients, gps).objective.weighted_served <= result.objective.weighted_served
