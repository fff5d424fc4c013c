"""One matching round: the exact, deterministic assignment of waiting patients to GPs who declared capacity.

Problem
-------
Every waiting patient (`Patient`) may receive at most one GP (`Gp`); a GP receives at most its declared
`capacity` of new patients. A patient may only go to a GP who is within the patient's `max_distance_km`
(great-circle distance, `cpts_geo.haversine_km`), who takes children if the patient is a child (adults if an
adult: `Gp.takes_adults`), who does home visits if the patient needs them, and who is not in the patient's
`excluded_gps`. Among the assignments that respect these hard constraints the round picks the best one for
this lexicographic objective (`Objective`):

1. maximise ``weighted_served``, the sum of the priority weights of the patients served;
2. then minimise ``total_distance_units``, the sum of the patient-GP distances, each rounded half up to a
   whole ``1 / UNITS_PER_KM`` km (100 m) by `distance_units`;
3. then minimise ``spread_cost``, which spreads the load in proportion to the declared capacities: the k-th
   patient given to a GP of capacity c costs ``ceil(SPREAD_SCALE * k / c)`` (its fill ratio after taking the
   patient, scaled to integers), so a GP with load n costs ``sum(ceil(SPREAD_SCALE * k / c) for k in 1..n)``
   (`spread_cost`). The marginal costs increase with k: the penalty is convex, and filling every GP to the
   same fraction of its capacity is the cheapest way to place a given number of patients.

`solve_round` is exact for this objective (not a heuristic) and deterministic: the same patients and GPs, in
any order, give the same assignments. `evaluate` recomputes the objective of any assignment and checks the
hard constraints; `greedy_fcfs` is the first-come-first-served baseline the reports compare with.

Model: a min-cost flow (OR-Tools `SimpleMinCostFlow`)
----------------------------------------------------
A naive patient x GP network is far too large (50 000 x 2 000 arcs), so patients and GPs are grouped in ways
that keep every solution of the naive network, with the same cost, and no other:

* GP side. GPs are grouped by location (GPs of one practice share a point). For a location and a patient
  *profile* (is_child, needs_home_visit), a **pool** node feeds every GP of that location who accepts the
  profile (arc capacity = the GP's capacity, cost 0). Each **GP** node reaches the sink through `capacity`
  parallel unit arcs costing the spread increments ``ceil(SPREAD_SCALE * k / capacity)``, k = 1..capacity: as
  the increments do not decrease, a GP with load n uses the n cheapest, so the flow pays exactly
  ``spread_cost(n, capacity)`` (convex costs through parallel arcs are exact in min-cost flow).
* Patient side. Patients live at commune points. For a home point and a profile, the pools within reach,
  sorted by distance, form a list, and a patient with mobility r can reach exactly its first
  ``level = #{pools at distance <= r}`` entries. Patients with the same (home, profile, level) form a
  **class**; the classes of one (home, profile) are nested, so they form a **chain**: the node of a level
  has an arc to each pool in its ring (ranks between the next lower level and its own, cost = the distance
  in units) and a cost-0 arc to the node of the next lower level. The source has one arc per distinct
  weight in a class (capacity = how many patients of the class have that weight, cost = -weight), and one
  bypass arc to the sink (cost 0) for the patients who stay unserved.
* Exclusions. A patient whose `excluded_gps` contain a GP it could otherwise reach gets its own node (a
  class of one): an arc to each pool within reach that holds none of its excluded GPs, and direct arcs to
  the non-excluded eligible GPs of the other locations. Other exclusions cannot matter and are ignored.

Every assignment is such a flow, at the same cost, and every integral flow decomposes into an assignment of
no greater cost (`_disaggregate` does it deterministically: within a class, patients are served in
(weight desc, `tie_break`, id) order, so the earlier-enrolled of two equal patients is served first).

Exact lexicographic order with one integer cost
------------------------------------------------
An arc carries one of the three criteria; its cost is ``-weight * M1 + distance_units * M2 + spread``. A flow
is optimal iff its residual network has no negative cycle, and the difference between any two flows splits
into simple cycles of the residual network of the first. So the scalar optimum is the lexicographic optimum
as soon as every simple cycle that is lexicographically negative (criteria (-weight, distance, spread)
compared in that order) also has a negative scalar cost. On a simple cycle C:

* spread: the sink is visited at most once, so C uses at most one arc into the sink (cost in
  [0, SPREAD_SCALE]) and one out of it (cost in [-SPREAD_SCALE, 0]): |spread(C)| <= SPREAD_SCALE;
* distance: each arc with a positive distance joins a patient-side node (chain level or single patient) to
  a GP-side node (pool or GP), two disjoint sets; a simple cycle goes through a node at most once, on two
  arcs, so |distance(C)| <= B = max_units * 2 * min(P, G), where max_units is the largest arc distance and
  P and G count the patient-side and GP-side nodes with such an arc.

With M2 = SPREAD_SCALE + 1 and M1 = M2 * B + SPREAD_SCALE + 1: if the weight part of C is <= -1 its cost is
<= -M1 + M2 * B + SPREAD_SCALE < 0; if it is 0 and the distance part <= -1, the cost is <= -M2 + SPREAD_SCALE
< 0; if both are 0 the cost is the spread part. OR-Tools multiplies every cost by (nodes + 1) and rejects a
cost above int64_max / (2 * (nodes + 1)): `solve_round` checks that bound before solving and raises
`OverflowError` if the weights are too large for it (or if the solver still reports a bad cost range).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import TypeVar

import numpy as np
from ortools.graph.python.min_cost_flow import SimpleMinCostFlow

from cpts_geo import haversine_km

UNITS_PER_KM = 10
"""Distances enter the objective as whole units of 100 m (rounded half up)."""
SPREAD_SCALE = 1000
"""Spread cost of the patient who fills a GP: the k-th patient of a GP of capacity c costs ceil(SCALE*k/c)."""
INT64_MAX = 2**63 - 1

Point = tuple[float, float]
Profile = tuple[bool, bool]
"""What a patient requires of a GP: (is_child, needs_home_visit)."""


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient waiting for a médecin traitant.

    `weight` is the priority (a positive integer, higher is more urgent, computed elsewhere). `lat`/`lon` is
    the home commune's point and `max_distance_km` how far the patient can travel. `excluded_gps` are GP ids
    the patient must never get (declined by the patient, or the GP declined the patient). `tie_break` orders
    otherwise equal patients (e.g. the enrolment timestamp in ISO format): the smallest is served first.
    """

    id: str
    weight: int
    lat: float
    lon: float
    max_distance_km: float
    needs_home_visit: bool = False
    is_child: bool = False
    excluded_gps: frozenset[str] = frozenset()
    tie_break: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight <= 0:
            raise ValueError(f"patient {self.id!r}: weight must be a positive integer, got {self.weight!r}")
        if not self.max_distance_km >= 0:
            raise ValueError(f"patient {self.id!r}: max_distance_km must be >= 0, "
                             f"got {self.max_distance_km!r}")
        object.__setattr__(self, "excluded_gps", frozenset(self.excluded_gps))


@dataclass(frozen=True, slots=True)
class Gp:
    """A GP who declared `capacity` new patients for this round, practising at (`lat`, `lon`).

    `takes_adults` is False for a GP who only takes children (the publics a GP declares in the registry).
    """

    id: str
    capacity: int
    lat: float
    lon: float
    takes_children: bool
    does_home_visits: bool
    takes_adults: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) or self.capacity < 0:
            raise ValueError(f"GP {self.id!r}: capacity must be an integer >= 0, got {self.capacity!r}")


@dataclass(frozen=True, slots=True)
class Objective:
    """The criteria, in lexicographic order: max `weighted_served`, min `total_distance_units`, then min
    `spread_cost`."""

    weighted_served: int
    total_distance_units: int
    spread_cost: int


@dataclass(frozen=True, slots=True)
class RoundResult:
    """The assignments (patient id -> GP id, ordered by patient id) and their objective."""

    assignments: dict[str, str]
    objective: Objective

    @property
    def served(self) -> int:
        return len(self.assignments)


def distance_km(patient: Patient, gp: Gp) -> float:
    """Great-circle distance from the patient's home point to the GP's practice."""
    return haversine_km(patient.lat, patient.lon, gp.lat, gp.lon)


def distance_units(km: float) -> int:
    """A distance as the objective counts it: whole units of 1 / UNITS_PER_KM km, rounded half up."""
    return math.floor(km * UNITS_PER_KM + 0.5)


def spread_increment(k: int, capacity: int) -> int:
    """Spread cost of the k-th patient given to a GP of this capacity: ceil(SPREAD_SCALE * k / capacity)."""
    return -(-SPREAD_SCALE * k // capacity)


def spread_cost(load: int, capacity: int) -> int:
    """Spread cost of a GP with this load: the sum of the increments of its 1st to load-th patient."""
    return sum(spread_increment(k, capacity) for k in range(1, load + 1))


def violation(patient: Patient, gp: Gp) -> str | None:
    """The hard constraint (other than capacity) that assigning `patient` to `gp` breaks, or None."""
    if distance_km(patient, gp) > patient.max_distance_km:
        return "distance"
    if patient.is_child and not gp.takes_children:
        return "child"
    if not patient.is_child and not gp.takes_adults:
        return "adult"
    if patient.needs_home_visit and not gp.does_home_visits:
        return "home visit"
    if gp.id in patient.excluded_gps:
        return "exclusion"
    return None


def evaluate(patients: Sequence[Patient], gps: Sequence[Gp], assignments: Mapping[str, str]) -> Objective:
    """The objective of `assignments`, after checking every hard constraint.

    Raises ValueError naming the violated constraint ("unknown patient", "unknown GP", "distance", "child",
    "adult", "home visit", "exclusion", "capacity").
    """
    patient_by_id = _by_id(patients, "patient")
    gp_by_id = _by_id(gps, "GP")
    loads: Counter[str] = Counter()
    weighted = distance = 0
    for patient_id, gp_id in assignments.items():
        if patient_id not in patient_by_id:
            raise ValueError(f"unknown patient {patient_id!r}: not a patient of the round")
        if gp_id not in gp_by_id:
            raise ValueError(f"unknown GP {gp_id!r}: not a GP of the round")
        patient, gp = patient_by_id[patient_id], gp_by_id[gp_id]
        broken = violation(patient, gp)
        if broken is not None:
            raise ValueError(f"{broken} constraint violated: patient {patient_id!r} -> GP {gp_id!r}")
        weighted += patient.weight
        distance += distance_units(distance_km(patient, gp))
        loads[gp_id] += 1
    for gp_id, load in sorted(loads.items()):
        if load > gp_by_id[gp_id].capacity:
            raise ValueError(f"capacity constraint violated: GP {gp_id!r} gets {load} patients, "
                             f"capacity {gp_by_id[gp_id].capacity}")
    spread = sum(spread_cost(load, gp_by_id[gp_id].capacity) for gp_id, load in loads.items())
    return Objective(weighted_served=weighted, total_distance_units=distance, spread_cost=spread)


def solve_round(patients: Sequence[Patient], gps: Sequence[Gp]) -> RoundResult:
    """The exact lexicographic optimum of the round (see the module docstring for the model and its proof)."""
    patients = _sorted_unique(patients, "patient")
    gps = _sorted_unique(gps, "GP")
    geography = _Geography(patients, gps)
    network = _Network()
    gp_nodes = {gp.id: network.add_gp(gp) for gp in geography.open_gps}
    pools: dict[tuple[int, Profile], _Pool] = {}
    for profile in sorted({_profile(p) for p in patients}):
        for location in range(len(geography.locations)):
            if (location, profile) in geography.members:
                pools[location, profile] = network.add_pool(geography.members[location, profile], gp_nodes)

    classes: defaultdict[tuple[Point, Profile], defaultdict[int, list[Patient]]] = defaultdict(
        lambda: defaultdict(list))
    singles: list[tuple[Patient, int]] = []
    for patient in patients:
        home, profile = (patient.lat, patient.lon), _profile(patient)
        level = bisect_right(geography.reach(home, profile)[0], patient.max_distance_km)
        if level == 0:
            continue  # no GP of a suitable profile within reach: never served
        excluded = (geography.open_gp_by_id.get(gp_id) for gp_id in patient.excluded_gps)
        if any(_excluded_reachable(patient, gp) for gp in excluded):
            singles.append((patient, level))
        else:
            classes[home, profile][level].append(patient)

    chains = [network.add_chain(geography.reach(home, profile), levels, profile, pools)
              for (home, profile), levels in sorted(classes.items())]
    single_nodes = [network.add_single(patient, level, geography, pools, gp_nodes)
                    for patient, level in singles]
    flows = network.solve()
    assignments = _disaggregate(flows, chains, single_nodes, pools)
    objective = evaluate(patients, gps, assignments)
    if objective != network.flow_objective(flows):
        raise RuntimeError("the assignments do not reproduce the optimal flow's objective")
    return RoundResult(assignments=assignments, objective=objective)


def greedy_fcfs(patients: Sequence[Patient], gps: Sequence[Gp]) -> RoundResult:
    """First come, first served: patients in (`tie_break`, id) order, each to the nearest eligible GP with
    capacity left (equal distances: the smaller GP id). A baseline for reports, not an optimiser."""
    patients = sorted(_sorted_unique(patients, "patient"), key=lambda p: (p.tie_break, p.id))
    gps = _sorted_unique(gps, "GP")
    geography = _Geography(patients, gps)
    left = {gp.id: gp.capacity for gp in geography.open_gps}
    open_at: list[list[Gp]] = [[] for _ in geography.locations]
    for gp in geography.open_gps:
        open_at[geography.location_of[gp.id]].append(gp)
    remaining = sum(left.values())
    assignments: dict[str, str] = {}
    for patient in patients:
        if remaining == 0:
            break
        near = geography.near[patient.lat, patient.lon]
        full = 0
        for km, location in near:
            if km > patient.max_distance_km:
                break
            if not open_at[location]:
                full += 1
                continue
            chosen = next((gp for gp in open_at[location] if violation(patient, gp) is None), None)
            if chosen is not None:
                assignments[patient.id] = chosen.id
                remaining -= 1
                left[chosen.id] -= 1
                if left[chosen.id] == 0:
                    open_at[location].remove(chosen)
                break
        if full:  # forget the full locations of this home once seen
            near[:] = [(km, location) for km, location in near if open_at[location]]
    ordered = dict(sorted(assignments.items()))
    return RoundResult(assignments=ordered, objective=evaluate(patients, gps, ordered))


# --- preparation -----------------------------------------------------------------------------------------

_Item = TypeVar("_Item", Patient, Gp)


def _by_id(items: Iterable[_Item], kind: str) -> dict[str, _Item]:
    by_id: dict[str, _Item] = {}
    for item in items:
        if item.id in by_id:
            raise ValueError(f"duplicate {kind} id {item.id!r}")
        by_id[item.id] = item
    return by_id


def _sorted_unique(items: Iterable[_Item], kind: str) -> list[_Item]:
    """The items sorted by id (the canonical order that makes the round independent of the input order)."""
    return [item for _, item in sorted(_by_id(items, kind).items())]


def _profile(patient: Patient) -> Profile:
    return (patient.is_child, patient.needs_home_visit)


def _accepts(gp: Gp, profile: Profile) -> bool:
    is_child, needs_home_visit = profile
    return ((gp.takes_children if is_child else gp.takes_adults)
            and (gp.does_home_visits or not needs_home_visit))


def _excluded_reachable(patient: Patient, gp: Gp | None) -> bool:
    """Whether an excluded GP (None: unknown or closed) would otherwise be eligible for the patient."""
    return (gp is not None and _accepts(gp, _profile(patient))
            and distance_km(patient, gp) <= patient.max_distance_km)


class _Geography:
    """GP locations and, from every home point, the locations within reach with their exact distances.

    Distances are always `haversine_km(home lat, home lon, GP lat, GP lon)`, the same call as `distance_km`,
    so the solver, `evaluate` and the baseline agree to the last bit. A vectorised numpy haversine only
    discards the locations that are clearly out of reach (with a margin far above its rounding error).
    """

    PREFILTER_MARGIN_KM = 1e-3

    def __init__(self, patients: Sequence[Patient], gps: Sequence[Gp]) -> None:
        self.open_gps = [gp for gp in gps if gp.capacity > 0]
        self.open_gp_by_id = {gp.id: gp for gp in self.open_gps}
        self.locations: list[Point] = sorted({(gp.lat, gp.lon) for gp in self.open_gps})
        index = {point: i for i, point in enumerate(self.locations)}
        self.location_of = {gp.id: index[gp.lat, gp.lon] for gp in self.open_gps}
        members: defaultdict[tuple[int, Profile], list[Gp]] = defaultdict(list)
        for gp in self.open_gps:  # sorted by id
            for profile in ((False, False), (False, True), (True, False), (True, True)):
                if _accepts(gp, profile):
                    members[self.location_of[gp.id], profile].append(gp)
        self.members: dict[tuple[int, Profile], list[Gp]] = dict(members)
        """The GPs (by id) of each location that accept each profile; no entry when there are none."""
        self._radians = np.radians(np.array(self.locations, dtype=float).reshape(-1, 2)).T
        radius: dict[Point, float] = {}
        for patient in patients:
            home = (patient.lat, patient.lon)
            radius[home] = max(radius.get(home, 0.0), patient.max_distance_km)
        self.near: dict[Point, list[tuple[float, int]]] = {
            home: self._within(home, radius[home]) for home in sorted(radius)}
        self._reach: dict[tuple[Point, Profile], tuple[list[float], list[int]]] = {}

    def _within(self, home: Point, radius_km: float) -> list[tuple[float, int]]:
        if not self.locations:
            return []
        lat, lon = np.radians(home[0]), np.radians(home[1])
        lats, lons = self._radians
        a = np.sin((lats - lat) / 2) ** 2 + np.cos(lat) * np.cos(lats) * np.sin((lons - lon) / 2) ** 2
        approx = 2 * 6371.0088 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        candidates = np.flatnonzero(approx <= radius_km + self.PREFILTER_MARGIN_KM)
        exact = ((haversine_km(home[0], home[1], *self.locations[i]), int(i)) for i in candidates)
        return sorted(pair for pair in exact if pair[0] <= radius_km)

    def reach(self, home: Point, profile: Profile) -> tuple[list[float], list[int]]:
        """Distances and locations, nearest first, of the locations with a GP accepting `profile`."""
        key = (home, profile)
        if key not in self._reach:
            pairs = [(km, location) for km, location in self.near[home]
                     if (location, profile) in self.members]
            self._reach[key] = ([km for km, _ in pairs], [location for _, location in pairs])
        return self._reach[key]


# --- the network -----------------------------------------------------------------------------------------

SOURCE, SINK = 0, 1


@dataclass(slots=True)
class _Pool:
    """The GPs of one location accepting one profile: `arcs` are (pool -> GP arc, GP), GPs by id."""

    node: int
    arcs: list[tuple[int, Gp]]


@dataclass(slots=True)
class _Level:
    """A class node of a chain: its source arcs (one per weight, patients in serving order), its ring of
    pool arcs (nearest first) and the arc down to the next lower level (None for the lowest)."""

    node: int
    groups: list[tuple[int, list[Patient]]]
    ring: list[tuple[int, _Pool]] = field(default_factory=list)
    down: int | None = None


@dataclass(slots=True)
class _Single:
    """A patient with a reachable excluded GP: arcs to the pools without one, and directly to GPs."""

    patient: Patient
    to_pools: list[tuple[int, _Pool]]
    to_gps: list[tuple[int, Gp]]


def _priority(patient: Patient) -> tuple[int, str, str]:
    return (-patient.weight, patient.tie_break, patient.id)


class _Network:
    """Arcs with their capacity and criteria (at most one non-zero per arc), then the scaled solve."""

    def __init__(self) -> None:
        self.num_nodes = 2  # SOURCE and SINK
        self.supply = 0
        self.tails: list[int] = []
        self.heads: list[int] = []
        self.capacities: list[int] = []
        self.weights: list[int] = []
        self.distances: list[int] = []
        self.spreads: list[int] = []

    def _node(self) -> int:
        self.num_nodes += 1
        return self.num_nodes - 1

    def _arc(self, tail: int, head: int, capacity: int, *, weight: int = 0, distance: int = 0,
             spread: int = 0) -> int:
        self.tails.append(tail)
        self.heads.append(head)
        self.capacities.append(capacity)
        self.weights.append(weight)
        self.distances.append(distance)
        self.spreads.append(spread)
        return len(self.tails) - 1

    def add_gp(self, gp: Gp) -> int:
        node = self._node()
        for k in range(1, gp.capacity + 1):
            self._arc(node, SINK, 1, spread=spread_increment(k, gp.capacity))
        return node

    def add_pool(self, members: list[Gp], gp_nodes: dict[str, int]) -> _Pool:
        node = self._node()
        return _Pool(node, [(self._arc(node, gp_nodes[gp.id], gp.capacity), gp) for gp in members])

    def add_chain(self, reach: tuple[list[float], list[int]], classes: Mapping[int, list[Patient]],
                  profile: Profile, pools: Mapping[tuple[int, Profile], _Pool]) -> list[_Level]:
        """The class nodes of one (home, profile), highest level first; `classes` maps level -> patients."""
        kms, locations = reach
        levels = sorted(classes, reverse=True)
        chain: list[_Level] = []
        entered = 0  # patients entering at this level or above: an upper bound of what can flow here
        for i, level in enumerate(levels):
            node = self._node()
            if chain:
                chain[-1].down = self._arc(chain[-1].node, node, entered)
            members = sorted(classes[level], key=_priority)
            groups = [(weight, list(group)) for weight, group in groupby(members, key=lambda p: p.weight)]
            current = _Level(node, [(self._arc(SOURCE, node, len(group), weight=weight), group)
                                    for weight, group in groups])
            entered += len(members)
            lower = levels[i + 1] if i + 1 < len(levels) else 0
            for rank in range(lower, level):
                pool = pools[locations[rank], profile]
                arc = self._arc(node, pool.node, entered, distance=distance_units(kms[rank]))
                current.ring.append((arc, pool))
            chain.append(current)
        self.supply += entered
        return chain

    def add_single(self, patient: Patient, level: int, geography: _Geography,
                   pools: Mapping[tuple[int, Profile], _Pool], gp_nodes: dict[str, int]) -> _Single:
        node = self._node()
        self._arc(SOURCE, node, 1, weight=patient.weight)
        self.supply += 1
        profile = _profile(patient)
        kms, locations = geography.reach((patient.lat, patient.lon), profile)
        single = _Single(patient, [], [])
        for km, location in zip(kms[:level], locations[:level]):
            units = distance_units(km)
            members = geography.members[location, profile]
            allowed = [gp for gp in members if gp.id not in patient.excluded_gps]
            if len(allowed) == len(members):
                pool = pools[location, profile]
                single.to_pools.append((self._arc(node, pool.node, 1, distance=units), pool))
            else:
                single.to_gps.extend((self._arc(node, gp_nodes[gp.id], 1, distance=units), gp)
                                     for gp in allowed)
        return single

    def solve(self) -> np.ndarray:
        """The flow on every arc, minimising the scaled cost (bounds: see the module docstring). Call once."""
        self._arc(SOURCE, SINK, self.supply)  # bypass: unserved patients
        tails = np.array(self.tails, dtype=np.int32)
        heads = np.array(self.heads, dtype=np.int32)
        positive = np.array(self.distances) > 0
        max_units = max(self.distances)
        bound = max_units * 2 * min(len(np.unique(tails[positive])), len(np.unique(heads[positive])))
        m2 = SPREAD_SCALE + 1
        m1 = m2 * bound + SPREAD_SCALE + 1
        largest = max(max(self.weights) * m1, max_units * m2, SPREAD_SCALE)  # Python integers: exact
        limit = INT64_MAX // (2 * (self.num_nodes + 1))
        if largest > limit:
            raise OverflowError(f"the scaled lexicographic cost needs arc costs up to {largest}, above the "
                                f"int64 limit {limit} of OR-Tools for {self.num_nodes} nodes: "
                                "lower the weights")
        costs = (-np.array(self.weights, dtype=np.int64) * m1 + np.array(self.distances, dtype=np.int64) * m2
                 + np.array(self.spreads, dtype=np.int64))
        solver = SimpleMinCostFlow()
        arcs = solver.add_arcs_with_capacity_and_unit_cost(
            tails, heads, np.array(self.capacities, dtype=np.int64), costs)
        solver.set_node_supply(SOURCE, self.supply)
        solver.set_node_supply(SINK, -self.supply)
        status = solver.solve()
        if status == SimpleMinCostFlow.BAD_COST_RANGE:
            raise OverflowError("OR-Tools reports an int64 overflow of the scaled costs: lower the weights")
        if status != SimpleMinCostFlow.OPTIMAL:
            raise RuntimeError(f"min-cost flow failed: {status.name}")
        return np.asarray(solver.flows(np.asarray(arcs, dtype=np.int32)))

    def flow_objective(self, flows: np.ndarray) -> Objective:
        """The three criteria of a flow, to check the disaggregation against."""
        return Objective(weighted_served=int(flows @ np.array(self.weights, dtype=np.int64)),
                         total_distance_units=int(flows @ np.array(self.distances, dtype=np.int64)),
                         spread_cost=int(flows @ np.array(self.spreads, dtype=np.int64)))


def _disaggregate(flows: np.ndarray, chains: list[list[_Level]], singles: list[_Single],
                  pools: Mapping[tuple[int, Profile], _Pool]) -> dict[str, str]:
    """Individual assignments with the flow's counts on every arc, in a fixed deterministic way.

    Within a class the first patients in (weight desc, tie_break, id) order are the served ones. Down a
    chain, the patients present at a level (entering there or coming from above) take its ring arcs in
    that order, nearest pool first, and the rest go down. At a pool, its patients (in that order) fill its
    GPs in id order. Any such split is valid: everyone at a level can reach every pool of its ring and
    below, and every patient of a pool may go to any of its GPs at the same distance.
    """
    at_pool: defaultdict[int, list[Patient]] = defaultdict(list)
    assignments: dict[str, str] = {}
    for chain in chains:
        coming: list[Patient] = []
        for level in chain:
            present = coming + [p for arc, group in level.groups for p in group[:flows[arc]]]
            present.sort(key=_priority)
            taken = 0
            for arc, pool in level.ring:
                at_pool[pool.node].extend(present[taken:taken + flows[arc]])
                taken += int(flows[arc])
            coming = present[taken:]
            if len(coming) != (0 if level.down is None else flows[level.down]):
                raise RuntimeError("flow conservation broken along a chain")
    for single in singles:
        for arc, pool in single.to_pools:
            if flows[arc]:
                at_pool[pool.node].append(single.patient)
        for arc, gp in single.to_gps:
            if flows[arc]:
                assignments[single.patient.id] = gp.id
    for pool in pools.values():
        waiting = sorted(at_pool[pool.node], key=_priority)
        taken = 0
        for arc, gp in pool.arcs:
            for patient in waiting[taken:taken + flows[arc]]:
                assignments[patient.id] = gp.id
            taken += int(flows[arc])
    return dict(sorted(assignments.items()))
