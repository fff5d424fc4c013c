"""The matching round: hard constraints, priorities and tie-breaks, determinism, `evaluate`, the baseline."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cpts_patient_matching.domain.assignment import (
    Gp,
    Objective,
    Patient,
    RoundResult,
    distance_km,
    distance_units,
    evaluate,
    greedy_fcfs,
    solve_round,
    spread_cost,
    violation,
)

LAT, LON = 45.7640, 4.8357  # Lyon
KM_PER_DEGREE = 111.195  # of latitude, on the sphere of cpts_geo.haversine_km


def patient(id: str, *, weight: int = 100, north_km: float = 0.0, max_km: float = 10.0,
            **traits: object) -> Patient:
    return Patient(id=id, weight=weight, lat=LAT + north_km / KM_PER_DEGREE, lon=LON, max_distance_km=max_km,
                   **traits)  # type: ignore[arg-type]


def gp(id: str, *, capacity: int = 1, north_km: float = 0.0, takes_children: bool = True,
       does_home_visits: bool = True) -> Gp:
    return Gp(id=id, capacity=capacity, lat=LAT + north_km / KM_PER_DEGREE, lon=LON,
              takes_children=takes_children, does_home_visits=does_home_visits)


def loads(result: RoundResult) -> Counter[str]:
    return Counter(result.assignments.values())


def random_round(rng: random.Random, patients: int = 60, gps: int = 8) -> tuple[list[Patient], list[Gp]]:
    points = [(rng.uniform(-8, 8), rng.uniform(-8, 8)) for _ in range(5)]
    doctors = []
    for i in range(gps):
        north, east = rng.choice(points)
        doctors.append(Gp(id=f"g{i}", capacity=rng.randint(0, 5), lat=LAT + north / KM_PER_DEGREE,
                          lon=LON + east / 78, takes_children=rng.random() < 0.7,
                          does_home_visits=rng.random() < 0.5))
    waiting = []
    for i in range(patients):
        north, east = rng.choice(points)
        waiting.append(Patient(
            id=f"p{i:02d}", weight=rng.choice([100, 300, 500, 1000]), lat=LAT + north / KM_PER_DEGREE,
            lon=LON + east / 78, max_distance_km=rng.choice([2.0, 5.0, 10.0, 20.0]),
            needs_home_visit=rng.random() < 0.15, is_child=rng.random() < 0.2,
            excluded_gps=frozenset(rng.sample([d.id for d in doctors], 2) if rng.random() < 0.2 else ()),
            tie_break=str(rng.randint(1, 4))))
    return waiting, doctors


# --- hard constraints ------------------------------------------------------------------------------------

def test_a_gp_gets_at_most_its_capacity():
    result = solve_round([patient(f"p{i}") for i in range(5)], [gp("g", capacity=2)])
    assert result.served == 2
    assert loads(result) == {"g": 2}


def test_a_patient_only_goes_to_a_gp_within_their_mobility():
    far = gp("far", north_km=12)
    assert solve_round([patient("p", max_km=10)], [far]).assignments == {}
    assert solve_round([patient("p", max_km=15)], [far]).assignments == {"p": "far"}


def test_a_child_only_goes_to_a_gp_who_takes_children():
    gps = [gp("adults", north_km=1, takes_children=False), gp("family", north_km=5)]
    assert solve_round([patient("child", is_child=True)], gps).assignments == {"child": "family"}
    assert solve_round([patient("child", is_child=True)], gps[:1]).assignments == {}


def test_a_home_visit_patient_only_goes_to_a_gp_who_does_home_visits():
    gps = [gp("office", north_km=1, does_home_visits=False), gp("visits", north_km=5)]
    assert solve_round([patient("p", needs_home_visit=True)], gps).assignments == {"p": "visits"}
    assert solve_round([patient("p", needs_home_visit=True)], gps[:1]).assignments == {}


def test_a_patient_never_goes_to_an_excluded_gp():
    gps = [gp("near", north_km=1), gp("other", north_km=5)]
    assert solve_round([patient("p", excluded_gps=frozenset({"near"}))], gps).assignments == {"p": "other"}
    assert solve_round([patient("p", excluded_gps=frozenset({"near", "other"}))], gps).assignments == {}


def test_an_exclusion_leaves_the_other_gps_of_the_same_practice_available():
    gps = [gp("a", north_km=1), gp("b", north_km=1), gp("c", north_km=9)]
    result = solve_round([patient("p", excluded_gps=frozenset({"a"}))], gps)
    assert result.assignments == {"p": "b"}


def test_empty_rounds():
    empty = RoundResult(assignments={}, objective=Objective(0, 0, 0))
    assert solve_round([], []) == empty
    assert solve_round([patient("p")], []) == empty
    assert solve_round([], [gp("g")]) == empty
    assert solve_round([patient("p")], []).served == 0


def test_a_gp_with_no_capacity_gets_nobody():
    result = solve_round([patient("p1"), patient("p2")], [gp("closed", capacity=0), gp("open", north_km=9)])
    assert result.assignments == {"p1": "open"}


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="weight"):
        patient("p", weight=0)
    with pytest.raises(ValueError, match="max_distance_km"):
        patient("p", max_km=-1)
    with pytest.raises(ValueError, match="capacity"):
        gp("g", capacity=-1)
    with pytest.raises(ValueError, match="duplicate patient id 'p'"):
        solve_round([patient("p"), patient("p")], [gp("g")])
    with pytest.raises(ValueError, match="duplicate GP id 'g'"):
        solve_round([patient("p")], [gp("g"), gp("g")])


def test_weights_too_large_for_an_exact_int64_scaling_fail_clearly():
    with pytest.raises(OverflowError, match="lower the weights"):
        solve_round([patient("p", weight=10**17)], [gp("g", north_km=3)])


# --- objective: priority, distance, spread, tie-breaks ---------------------------------------------------

def test_a_higher_weight_wins_even_if_farther():
    ald = patient("ald", weight=1000, north_km=8)
    other = patient("other", weight=100)
    assert solve_round([other, ald], [gp("g")]).assignments == {"ald": "g"}


def test_among_equal_weights_the_nearer_patient_is_served():
    result = solve_round([patient("far", north_km=6), patient("near", north_km=2)], [gp("g")])
    assert result.assignments == {"near": "g"}


def test_a_patient_goes_to_the_nearest_gp():
    result = solve_round([patient("p")], [gp("far", north_km=4), gp("near", north_km=2)])
    assert result.assignments == {"p": "near"}
    assert result.objective == Objective(weighted_served=100, total_distance_units=20, spread_cost=1000)


def test_distance_comes_before_spread():
    # "near" is full after one patient (spread 1000), "roomy" would cost 10 of spread but 10 distance units.
    result = solve_round([patient("p")], [gp("near"), gp("roomy", capacity=100, north_km=1)])
    assert result.assignments == {"p": "near"}


def test_load_is_spread_in_proportion_to_capacity():
    gps = [gp("two", capacity=2), gp("four", capacity=4)]
    assert loads(solve_round([patient(f"p{i}") for i in range(3)], gps)) == {"two": 1, "four": 2}
    assert loads(solve_round([patient(f"p{i}") for i in range(6)], gps)) == {"two": 2, "four": 4}


def test_less_mobile_patients_get_the_near_gp_when_that_serves_everyone():
    # By id, "a" (who can go far) would take the near GP and "b" (who cannot) would be left out.
    result = solve_round([patient("a", max_km=20), patient("b", max_km=5)], [gp("near", north_km=3),
                                                                            gp("far", north_km=15)])
    assert result.assignments == {"a": "far", "b": "near"}


def test_among_equal_patients_the_earlier_enrolled_is_served_first():
    early = patient("z", tie_break="2025-01-15")
    late = patient("a", tie_break="2025-03-01")
    assert solve_round([late, early], [gp("g")]).assignments == {"z": "g"}
    assert solve_round([patient("b"), patient("a")], [gp("g")]).assignments == {"a": "g"}


def test_the_same_round_in_any_order_gives_the_same_assignments():
    rng = random.Random(7)
    patients, gps = random_round(rng, patients=150, gps=12)
    expected = solve_round(patients, gps)
    assert expected.served > 0
    for _ in range(5):
        rng.shuffle(patients)
        rng.shuffle(gps)
        again = solve_round(patients, gps)
        assert again == expected
        assert list(again.assignments.items()) == list(expected.assignments.items())
    assert list(expected.assignments) == sorted(expected.assignments)


@pytest.mark.parametrize("seed", range(40))
def test_random_rounds_are_feasible_maximal_and_beat_the_baseline(seed: int):
    patients, gps = random_round(random.Random(seed))
    result = solve_round(patients, gps)
    assert evaluate(patients, gps, result.assignments) == result.objective
    assert result.served <= min(len(patients), sum(d.capacity for d in gps))
    # Maximal: serving one more patient would add weight, so nobody left out has a free eligible GP.
    load = loads(result)
    for waiting in patients:
        if waiting.id not in result.assignments:
            assert all(violation(waiting, d) or load[d.id] == d.capacity for d in gps if d.capacity)
    baseline = greedy_fcfs(patients, gps)
    assert evaluate(patients, gps, baseline.assignments) == baseline.objective
    assert baseline.objective.weighted_served <= result.objective.weighted_served


# --- evaluate --------------------------------------------------------------------------------------------

def test_evaluate_computes_the_three_criteria():
    patients = [patient("a", weight=1000), patient("b", north_km=1.26), patient("c")]
    gps = [gp("g", capacity=3), gp("h", capacity=2, north_km=2)]
    objective = evaluate(patients, gps, {"a": "g", "b": "g", "c": "h"})
    assert objective == Objective(weighted_served=1200, total_distance_units=0 + 13 + 20,
                                  spread_cost=(334 + 667) + 500)


def test_distance_units_round_half_up_to_100_m():
    assert [distance_units(km) for km in (0.0, 0.04, 0.05, 1.25, 29.96)] == [0, 0, 1, 13, 300]
    assert spread_cost(0, 4) == 0
    assert spread_cost(3, 4) == 250 + 500 + 750


@pytest.mark.parametrize(("traits", "gp_traits", "message"), [
    ({"max_km": 1.0}, {"north_km": 2.0}, "distance constraint violated"),
    ({"is_child": True}, {"takes_children": False}, "child constraint violated"),
    ({"needs_home_visit": True}, {"does_home_visits": False}, "home visit constraint violated"),
    ({"excluded_gps": frozenset({"g"})}, {}, "exclusion constraint violated"),
])
def test_evaluate_names_the_violated_constraint(traits: dict, gp_traits: dict, message: str):
    max_km = traits.pop("max_km", 10.0)
    with pytest.raises(ValueError, match=message):
        evaluate([patient("p", max_km=max_km, **traits)], [gp("g", **gp_traits)], {"p": "g"})


def test_evaluate_checks_capacity_and_ids():
    patients, gps = [patient("p1"), patient("p2")], [gp("g")]
    with pytest.raises(ValueError, match="capacity constraint violated: GP 'g' gets 2 patients, capacity 1"):
        evaluate(patients, gps, {"p1": "g", "p2": "g"})
    with pytest.raises(ValueError, match="unknown patient 'x'"):
        evaluate(patients, gps, {"x": "g"})
    with pytest.raises(ValueError, match="unknown GP 'x'"):
        evaluate(patients, gps, {"p1": "x"})


# --- the first-come-first-served baseline ---------------------------------------------------------------

def test_greedy_serves_in_enrolment_order_at_the_nearest_gp():
    first = patient("z", weight=100, tie_break="2025-01-01")
    second = patient("a", weight=1000, tie_break="2025-02-01")
    result = greedy_fcfs([second, first], [gp("far", north_km=4), gp("near", north_km=1)])
    assert result.assignments == {"a": "far", "z": "near"}
    assert solve_round([second, first], [gp("far", north_km=4), gp("near", north_km=1)]).served == 2


def test_greedy_respects_the_hard_constraints():
    gps = [gp("adults", north_km=1, takes_children=False), gp("excluded", north_km=2), gp("far", north_km=30)]
    patients = [patient("child", is_child=True, excluded_gps=frozenset({"excluded"}))]
    assert greedy_fcfs(patients, gps).assignments == {}
    assert distance_km(patients[0], gps[2]) > patients[0].max_distance_km
