"""Plain domain rules: NIR key, identity traits and near duplicates, priority score and its explanation,
lifecycle transitions, and the GP publics the round respects."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from cpts_patient_matching.domain import lifecycle as lc
from cpts_patient_matching.domain.assignment import Gp, Patient, solve_round, violation
from cpts_patient_matching.domain.errors import InvalidPatient, InvalidTransition
from cpts_patient_matching.domain.identity import (
    Traits,
    edit_distance,
    fold,
    name_key,
    near_duplicate_reason,
    same_person,
)
from cpts_patient_matching.domain.intake import (
    PARIS,
    age_band,
    check_birth_date,
    check_commune,
    check_nir,
)
from cpts_patient_matching.domain.priority import PriorityFacts, PriorityWeights, Ranked, compare, priority
from cpts_platform.identifiers import nir_key

TODAY = date(2026, 11, 24)


# --- NIR, birth date, commune -------------------------------------------------------------------------------

def test_nir_key_is_97_minus_the_number_mod_97_with_corsica_read_as_19_and_18():
    body = "2500369266012"
    check_nir(body + f"{97 - int(body) % 97:02d}")
    corsica = "18502" + "2A" + "004123"
    key = f"{97 - int(corsica.replace('2A', '19')) % 97:02d}"
    assert nir_key(corsica) == key
    check_nir(corsica + key)
    with pytest.raises(InvalidPatient) as bad_key:
        check_nir(body + "00", field="nir")
    assert bad_key.value.field == "nir" and body not in bad_key.value.detail
    for malformed in ("12345", "4500369266012" + "00", "2500369266O12" + "00"):
        with pytest.raises(InvalidPatient):
            check_nir(malformed)


def test_birth_date_in_the_future_and_unknown_commune_are_refused():
    with pytest.raises(InvalidPatient, match="future"):
        check_birth_date(TODAY + timedelta(days=1), TODAY)
    with pytest.raises(InvalidPatient, match="unknown commune"):
        check_commune("69999")
    assert check_commune("69266").name == "Villeurbanne"
    assert age_band(date(2012, 1, 1), TODAY) == "child" and age_band(date(1956, 11, 24), TODAY) == "70+"


# --- One person, one record ---------------------------------------------------------------------------------

def traits(birth: str = "Lambert", first: str = "Rose", born: date = date(1950, 3, 2), sex: str = "F",
           used: str | None = None, ins: str | None = None) -> Traits:
    return Traits(birth_name=birth, first_names=first, birth_date=born, sex=sex, used_name=used, ins_nir=ins)


def test_names_are_compared_without_case_accents_or_punctuation():
    assert fold("  Hélène-Œdipe D'ARC ") == "helene oedipe d arc"
    assert name_key("Jean-Pierre") == name_key("jean pierre") == "jeanpierre"
    assert same_person(traits("LAMBERT", "rose"), traits("Lambért", "Rose Marie"))
    assert same_person(traits("Martin", used="Dupont"), traits("Dupont"))  # known by her used name
    assert not same_person(traits(), traits(born=date(1950, 3, 3)))
    assert not same_person(traits(ins="1"), traits(ins="2"))  # different INS: different people


def test_near_duplicates_are_typos_swaps_other_first_names_or_same_traits_with_two_ins():
    assert edit_distance("lambert", "lambret") == 1 and edit_distance("lambert", "dupont", 3) == 4
    assert near_duplicate_reason(traits(), traits("Lambret")) == "nom de famille proche (faute de frappe ?)"
    assert near_duplicate_reason(traits(), traits(first="Roze")) == "prénom proche (faute de frappe ?)"
    assert near_duplicate_reason(traits(), traits("Rose", "Lambert")) == "nom et prénom inversés"
    assert near_duplicate_reason(traits(first="Marie Rose"), traits(first="Rose")) == \
        "un autre des prénoms utilisé"
    assert near_duplicate_reason(traits(ins="1"), traits(ins="2")) == \
        "mêmes traits d'identité, INS différents"
    assert near_duplicate_reason(traits(), traits(sex="U", first="Roze")) is not None
    assert near_duplicate_reason(traits(), traits(sex="M", first="Roze")) is None
    assert near_duplicate_reason(traits(), traits("Bernard", "Paul")) is None
    assert near_duplicate_reason(traits(), traits(born=date(1950, 3, 3), first="Roze")) is None


# --- Priority -----------------------------------------------------------------------------------------------

def facts(born: date = date(1952, 5, 1), enrolled: date = TODAY - timedelta(days=63), **flags
          ) -> PriorityFacts:
    return PriorityFacts(birth_date=born, enrolled_on=enrolled, **flags)


def test_the_explanation_says_why_in_french():
    weights = PriorityWeights()
    p = priority(facts(ald=True), TODAY, weights)
    assert p.explanation == "ALD, 74 ans, attend depuis 63 jours"
    assert p.group == "ald" and p.facts == ("ald", "70+")
    assert p.score == 100 + 400 + 250 + 63 * 2
    assert [c.key for c in p.components] == ["base", "ald", "70+", "waiting"]
    discharged = priority(facts(born=date(1980, 1, 1), enrolled=TODAY, c2s=True,
                                hospital_discharge_on=TODAY - timedelta(days=12)), TODAY, weights)
    assert discharged.explanation == \
        "C2S, sortie d'hospitalisation il y a 12 jours, 46 ans, inscrit aujourd'hui"
    assert discharged.group == "c2s"
    old_discharge = priority(facts(born=date(1980, 1, 1), hospital_discharge_on=TODAY - timedelta(days=200)),
                             TODAY, weights)
    assert old_discharge.group == "none" and "sortie" not in old_discharge.explanation


def test_groups_come_in_the_aci_order_and_points_are_configuration():
    weights = PriorityWeights()
    young = date(1990, 1, 1)
    scores = {name: priority(facts(born=date(1950, 1, 1) if name == "70+" else young, enrolled=TODAY,
                                   **flags), TODAY, weights).score
              for name, flags in {"ald": {"ald": True}, "70+": {}, "c2s": {"c2s": True},
                                  "other": {"pregnancy": True}, "none": {}}.items()}
    assert scores["ald"] > scores["70+"] > scores["c2s"] > scores["other"] > scores["none"]
    custom = PriorityWeights(ald=1000, per_waiting_day=1)
    assert priority(facts(born=young, enrolled=TODAY, ald=True), TODAY, custom).score == 1100
    with pytest.raises(ValueError):
        PriorityWeights(base=0)


def test_waiting_lifts_a_patient_without_priority_above_a_new_ald_patient_after_200_days():
    weights = PriorityWeights()
    young = date(1990, 1, 1)
    new_ald = priority(facts(born=young, enrolled=TODAY, ald=True), TODAY, weights).score
    waited = [priority(facts(born=young, enrolled=TODAY - timedelta(days=d)), TODAY, weights).score
              for d in (199, 201)]
    assert waited[0] < new_ald < waited[1]


def test_compare_names_who_comes_first_and_the_points_that_differ():
    weights = PriorityWeights()
    when = datetime(2026, 9, 1, 9, tzinfo=PARIS)
    a = Ranked("a", when, priority(facts(ald=True), TODAY, weights))
    b_facts = facts(born=date(1980, 1, 1), c2s=True, enrolled=TODAY - timedelta(days=93))
    b = Ranked("b", when - timedelta(days=30), priority(b_facts, TODAY, weights))
    result = compare(a, b)
    assert result.first == "a" and result.score_difference == a.priority.score - b.priority.score
    assert {label: delta for _, label, delta in result.differences} == {
        "ALD": 400, "70 ans et plus": 250, "C2S": -150, "attente": -60}
    assert result.explanation.startswith("A passe avant B :")
    assert "ALD : +400 pour A" in result.explanation and "attente : +60 pour B (30 jours de plus)" in \
        result.explanation
    tie = compare(Ranked("x", when, a.priority), Ranked("y", when - timedelta(days=1), a.priority))
    assert tie.first == "b" and "inscrit plus tôt" in tie.explanation


# --- Lifecycle ----------------------------------------------------------------------------------------------

def test_lifecycle_allows_the_documented_transitions_only():
    lc.check_transition("waiting", "proposed")
    lc.check_transition("proposed", "waiting")
    lc.check_transition("proposed", "mt_declared")
    lc.check_transition("withdrawn", "waiting")
    for current, target in (("waiting", "mt_declared"), ("merged", "waiting"), ("mt_declared", "withdrawn")):
        with pytest.raises(InvalidTransition):
            lc.check_transition(current, target)


# --- GP publics in the round --------------------------------------------------------------------------------

def test_a_gp_who_only_takes_children_gets_no_adult():
    paediatric = Gp(id="kids", capacity=2, lat=45.76, lon=4.88, takes_children=True, does_home_visits=False,
                    takes_adults=False)
    family = Gp(id="family", capacity=2, lat=45.80, lon=4.88, takes_children=True, does_home_visits=False)
    adult = Patient(id="adult", weight=100, lat=45.76, lon=4.88, max_distance_km=10)
    child = Patient(id="child", weight=100, lat=45.76, lon=4.88, max_distance_km=10, is_child=True)
    assert violation(adult, paediatric) == "adult"
    assert solve_round([adult, child], [paediatric, family]).assignments == {
        "adult": "family", "child": "kids"}
