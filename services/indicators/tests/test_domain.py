"""Plain domain rules: Paris-time periods, small-cell masking, the catalogue's checks, identity-free facts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from cpts_events import new_event
from cpts_events import snp_dispatch as s
from cpts_indicators.domain.catalogue import CATALOGUE_FILE, CatalogueError, catalogue, load_catalogue
from cpts_indicators.domain.facts import FACT_BUILDERS, FACT_SCHEMAS, facts_of
from cpts_indicators.domain.masking import Measure, RawValue, publish
from cpts_indicators.domain.periods import (
    InvalidPeriod,
    PeriodKind,
    parse_period,
    period_of,
    periods_between,
)


@pytest.mark.parametrize(("kind", "text", "key", "start", "end"), [
    (PeriodKind.MONTH, "2026-03", "2026-03", "2026-02-28T23:00:00+00:00", "2026-03-31T22:00:00+00:00"),
    (PeriodKind.MONTH, "2026-11-23", "2026-11", "2026-10-31T23:00:00+00:00", "2026-11-30T23:00:00+00:00"),
    (PeriodKind.WEEK, "2026-W01", "2026-W01", "2025-12-28T23:00:00+00:00", "2026-01-04T23:00:00+00:00"),
    (PeriodKind.WEEK, "2027-01-01", "2026-W53", "2026-12-27T23:00:00+00:00", "2027-01-03T23:00:00+00:00"),
    (PeriodKind.QUARTER, "2026-Q2", "2026-Q2", "2026-03-31T22:00:00+00:00", "2026-06-30T22:00:00+00:00"),
    (PeriodKind.YEAR, "2026", "2026", "2025-12-31T23:00:00+00:00", "2026-12-31T23:00:00+00:00"),
    (PeriodKind.DAY, "2026-10-25", "2026-10-25", "2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00"),
])
def test_periods_are_paris_local_time(kind, text, key, start, end):
    period = parse_period(kind, text)
    assert (period.key, period.start.isoformat(), period.end.isoformat()) == (key, start, end)
    assert period_of(kind, period.start) == period and period_of(kind, period.end) == period.next()


@pytest.mark.parametrize("text", ["2026-13", "2026-W54", "26-03", "2026-Q5", "hier"])
def test_a_malformed_period_is_refused(text):
    with pytest.raises(InvalidPeriod):
        parse_period(PeriodKind.MONTH if "Q" not in text and "W" not in text else
                     (PeriodKind.QUARTER if "Q" in text else PeriodKind.WEEK), text)


def test_a_range_of_periods_is_bounded_and_ordered():
    first, last = parse_period(PeriodKind.MONTH, "2025-11"), parse_period(PeriodKind.MONTH, "2026-02")
    keys = [p.key for p in periods_between(first, last, limit=10)]
    assert keys == ["2025-11", "2025-12", "2026-01", "2026-02"]
    with pytest.raises(InvalidPeriod):
        periods_between(last, first, limit=10)
    with pytest.raises(InvalidPeriod):
        periods_between(first, last, limit=3)


def _published(threshold: int, **counts: int) -> dict:
    definitions = catalogue()
    period = parse_period(PeriodKind.MONTH, "2026-03")
    when = datetime(2026, 3, 5, tzinfo=UTC)
    received = counts.pop("received")
    raw = {
        "snp.requests.received": RawValue(Measure(received, (received,), when), {"origin": {
            origin: Measure(n, (n,), when) for origin, n in counts.items()}}),
        "snp.requests.seen_within_24h": RawValue(Measure(counts.get("sas", 0), (counts.get("sas", 0),), when),
                                                 {"origin": {"sas": Measure(counts.get("sas", 0),
                                                                            (counts.get("sas", 0),), when)}}),
    }
    ids = ["snp.requests.received", "snp.requests.seen_within_24h", "snp.requests.seen_within_24h_share"]
    return {v.definition.id: v for v in publish(definitions, period, raw, threshold=threshold, ids=ids)}


def test_counts_from_one_to_the_threshold_minus_one_are_masked_without_their_time():
    values = _published(6, received=20, sas=14, cpts_phone=6)
    assert values["snp.requests.received"].total.value == 20
    assert not any(c.masked for c in values["snp.requests.received"].breakdowns["origin"].values())
    small = _published(6, received=5, sas=5)
    total = small["snp.requests.received"].total
    assert (total.value, total.masked, total.last_event_time) == (None, True, None)
    assert small["snp.requests.seen_within_24h_share"].total.masked
    zero = _published(6, received=0)
    empty = zero["snp.requests.received"].total
    assert (empty.value, empty.masked) == (0, False)
    assert zero["snp.requests.seen_within_24h_share"].total.value is None  # a ratio over zero: undefined


def test_the_threshold_is_a_setting():
    assert not _published(1, received=2, sas=2)["snp.requests.received"].total.masked
    assert _published(11, received=10, sas=10)["snp.requests.received"].total.masked


def test_a_single_masked_category_takes_the_smallest_other_one_with_it():
    origins = _published(6, received=30, sas=20, cpts_phone=7, member_referral=3)[
        "snp.requests.received"].breakdowns["origin"]
    assert {c: (cell.value, cell.masked) for c, cell in origins.items()} == {
        "sas": (20, False), "cpts_phone": (None, True), "member_referral": (None, True)}
    shares = _published(6, received=30, sas=20, cpts_phone=7, member_referral=3)[
        "snp.requests.seen_within_24h_share"].breakdowns["origin"]
    assert shares["sas"].value == 100.0 and shares["cpts_phone"].masked


def test_the_shipped_catalogue_covers_missions_1b_and_the_registry_with_french_labels():
    definitions = catalogue()
    ids = set(definitions.by_id)
    assert {"snp.slots.hours_per_week", "snp.slots.sas_visible_share",
            "snp.general_practitioners.sas_2h_per_week_share", "snp.requests.received",
            "snp.requests.seen_within_24h_share", "snp.requests.seen_within_48h_share",
            "snp.requests.delay_median", "snp.appointments.noshow_rate", "snp.consultations.en_sus",
            "snp.requests.closed_without_slot", "registry.members", "registry.members.active",
            "registry.sas_participants", "registry.general_practitioners.accepting_mt",
            "registry.population"} <= ids
    assert all(d.label and d.description and d.unit for d in definitions.indicators)
    assert set(FACT_BUILDERS) <= set(FACT_SCHEMAS)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["indicators"][0]["compute"].update(select="nowhere"), "unknown set"),
    (lambda c: c["sets"]["members"]["where"].update(colour="blue"), "no attribute 'colour'"),
    (lambda c: c["indicators"][0].update(breakdowns=["population"]), "no attribute"),
    (lambda c: c["indicators"].append(dict(c["indicators"][0])), "unique"),
    (lambda c: c["sets"]["requests_received"].update(time="ref"), "no ref time"),
    (lambda c: c["sets"]["members"].update(events=["fr.cpts.snp.slot.held.v1"]), "no facts are kept"),
])
def test_a_catalogue_that_does_not_hold_together_is_refused(tmp_path, change, message):
    document = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(path)


def test_the_facts_of_a_patient_without_mt_seen_keep_no_identity():
    event = new_event(s.PatientWithoutMtSeen(
        request_id="req-1", appointment_id="apt-1", cpts_id="690049999", commune_insee="69259",
        seen_by="810100000001", seen_at=datetime(2026, 3, 3, 12, tzinfo=UTC), patient=s.PatientIdentity(
            family_name="Zorglub", given_name="Ninon", birth_date=date(1980, 5, 4), sex="F",
            ins_nir="280056912345678")), source="/cpts/snp-dispatch")
    [fact] = facts_of(event)
    assert (fact.cpts_id, fact.entity, fact.subject, fact.attributes) == ("690049999", None, None, {})


def test_an_appointment_counts_for_the_request_s_cpts_and_the_professional_s():
    received = datetime(2026, 3, 3, 8, tzinfo=UTC)
    event = new_event(s.AppointmentBooked(
        appointment_id="a", request_id="r", idnps="810100000001", cpts_ids=["690049999"],
        request_cpts_id="010000001", origin="sas", kind="slot", slot_id="s",
        start=datetime(2026, 3, 4, 14, tzinfo=UTC), service_type="AMB", request_received_at=received,
        booked_at=datetime(2026, 3, 3, 9, tzinfo=UTC)), source="/cpts/snp-dispatch")
    facts = {f.cpts_id: f for f in facts_of(event)}
    professional_side, request_side = facts["690049999"].attributes, facts["010000001"].attributes
    assert professional_side["professional_cpts"] and not professional_side["request_cpts"]
    assert request_side["request_cpts"] and request_side["delay_hours"] == 30
    assert facts["010000001"].ref_time == received
