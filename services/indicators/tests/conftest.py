"""A month of a CPTS's life as events (March 2026, Paris time), and ways to feed them to the indicators."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from cpts_events import Event, new_event
from cpts_events import registry as r
from cpts_events import snp_dispatch as s
from cpts_indicators.app import service
from cpts_indicators.consumers import record_facts
from cpts_indicators.snapshots import refresh_pending
from cpts_platform.db import Database
from cpts_platform.migrations import upgrade

PARIS = ZoneInfo("Europe/Paris")
CPTS = "690049999"
SNP = "/cpts/snp-dispatch"
OTHER_CPTS = "010000001"


def paris(text: str) -> datetime:
    """An instant given in Paris local time, e.g. `2026-03-02T09:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).astimezone(UTC)


def at(payload, when: datetime, source: str = "/cpts/registry") -> Event:
    """The event of `payload`, as if it happened at `when`."""
    return replace(new_event(payload, source=source), time=when)


def gp(n: int) -> str:
    return f"8101000000{n:02d}"


@dataclass
class Scenario:
    """The events, and what the indicators of CPTS for March 2026 must say (threshold 1: nothing masked)."""

    events: list[Event]
    expected: dict[str, float | None]
    origins: dict[str, int]


def march() -> Scenario:
    events: list[Event] = [at(r.CptsRegistered(
        cpts_id=CPTS, name="CPTS de l'Est lyonnais", stage="aci_signed", communes=["69259", "69266"],
        population=62000, size_band=2, departements=["69"]), paris("2026-01-05T10:00"))]
    # Eight GPs and two nurses; GP 1 also belongs to another CPTS.
    for n in range(1, 11):
        nurse = n > 8
        events.append(at(r.ProfessionalRegistered(
            idnps=gp(n), family_name=f"Nom{n}", given_name="Prénom", profession_code="60" if nurse else "10",
            specialty_code=None if nurse else "SM54", cpts_ids=[CPTS, OTHER_CPTS] if n == 1 else [CPTS]),
            paris("2026-01-10T09:00")))
    events += [at(r.MembershipChanged(idnps=gp(n), cpts_id=CPTS, status="active"), paris("2026-02-01T09:00"))
               for n in (1, 2, 3)]
    events.append(at(r.MembershipChanged(idnps=gp(8), cpts_id=CPTS, status="left"),
                     paris("2026-03-20T09:00")))
    events += [at(r.SasParticipationChanged(idnps=gp(n), participating=True, mode="cpts", hours_per_week=2,
                                            start_date=date(2026, 2, 1)), paris("2026-02-01T10:00"))
               for n in (1, 2, 3, 9)]
    events.append(at(r.SasParticipationChanged(idnps=gp(3), participating=False), paris("2026-04-02T10:00")))
    events += [at(r.MtCapacityChanged(idnps=gp(n), accepting=True, new_patients_per_month=5),
                  paris("2026-02-15T10:00")) for n in (2, 4)]
    events.append(at(r.ProfessionalDeactivated(idnps=gp(7), reason="deactivated-by-admin"),
                     paris("2026-03-25T10:00")))

    # Slots: every Monday of March (2, 9, 16, 23, 30). GP 1: 3 h visible to the SAS; GP 2: 1 h SAS;
    # GP 3: 3 h for professionals only; GP 4: 2 h SAS, one withdrawn; GP 5: 2 h, made SAS-visible later.
    def slot(n: int, day: int, hours: float, visibility: list[str], **extra) -> dict:
        start = paris(f"2026-03-{day:02d}T14:00")
        return dict(slot_id=f"slot-{n}-{day}", idnps=gp(n), cpts_ids=[CPTS], site_id=f"S{n}", start=start,
                    end=start + timedelta(hours=hours), service_type="HH" if n == 5 else "AMB",
                    visibility=visibility, appointment_type="ROUTINE", **extra)

    published = paris("2026-02-25T08:00")
    for day in (2, 9, 16, 23, 30):
        for n, hours, visibility in ((1, 3, ["SNP", "PRO"]), (2, 1, ["SNP"]), (3, 3, ["PRO"]),
                                     (4, 2, ["SNP"]), (5, 2, ["PRO"])):
            events.append(at(s.SlotPublished(**slot(n, day, hours, visibility)), published, SNP))
        shown = paris("2026-02-26T08:00")
        events.append(at(s.SlotVisibilityChanged(**slot(5, day, 2, ["PRO", "SNP"])), shown, SNP))
    events.append(at(s.SlotWithdrawn(**slot(4, 30, 2, ["SNP"])), paris("2026-03-27T08:00"), SNP))

    # Care requests: 9 through the SAS, 3 by phone to the secretary, 6 referred by members.
    origins = {"sas": 9, "cpts_phone": 3, "member_referral": 6}
    requests = []
    for i, origin in enumerate(o for o, count in origins.items() for _ in range(count)):
        received = paris(f"2026-03-{2 + i:02d}T08:00")
        requests.append((f"req-{i}", origin, received))
        events.append(at(s.CareRequestReceived(
            request_id=f"req-{i}", origin=origin, cpts_id=CPTS, commune_insee="69259", departement="69",
            urgency="24h", reason_category="fievre", has_mt=i % 2 == 0, age_band="adult",
            received_at=received),
            received, SNP))
    # Twelve get an appointment, at these delays (hours); the 12th en sus (no slot). Request 0 is booked
    # twice: its first appointment (at 60 h) is cancelled, its last one counts (at 2 h).
    delays = [2, 5, 10, 20, 23, 30, 40, 47, 50, 70, 80, 3]
    for i, delay in enumerate(delays):
        request_id, origin, received = requests[i]
        kind = "en_sus" if i == 11 else "slot"
        facts = dict(request_id=request_id, idnps=gp(1 + i % 4), cpts_ids=[CPTS], request_cpts_id=CPTS,
                     origin=origin, kind=kind, request_received_at=received)
        if i == 0:
            first = dict(facts, appointment_id="apt-0-first", start=received + timedelta(hours=60),
                         service_type="AMB", slot_id="x")
            events.append(at(s.AppointmentBooked(**first, booked_at=received + timedelta(minutes=5)),
                             received + timedelta(minutes=5), SNP))
            events.append(at(s.AppointmentCancelled(**first, cancelled_at=received + timedelta(minutes=30),
                                                    reason="patient"), received + timedelta(minutes=30),
                             SNP))
        booked_at = received + timedelta(minutes=45) if kind == "slot" else received + timedelta(hours=delay)
        on_slot = kind == "slot"
        facts |= dict(appointment_id=f"apt-{i}", start=received + timedelta(hours=delay) if on_slot else None,
                      service_type="AMB" if on_slot else None, slot_id=f"slot-{i}" if on_slot else None)
        events.append(at(s.AppointmentBooked(**facts, booked_at=booked_at), booked_at, SNP))
        # Outcomes: ten seen, two no-shows (requests 4 and 9); request 6 first recorded seen, then corrected.
        seen = received + timedelta(hours=delay, minutes=30)
        if i in (4, 9):
            events.append(at(s.AppointmentNoShow(**facts, recorded_at=seen), seen, SNP))
        elif i == 6:
            events.append(at(s.AppointmentNoShow(**facts, recorded_at=seen), seen, SNP))
            corrected = seen + timedelta(hours=1)
            events.append(at(s.AppointmentFulfilled(**facts, recorded_at=corrected), corrected,
                             SNP))
        else:
            events.append(at(s.AppointmentFulfilled(**facts, recorded_at=seen), seen, SNP))
    # Closed without a slot: four requests (two sent to the PDSA, two to the emergency department).
    orientations = ("pdsa", "pdsa", "emergency_department", "emergency_department")
    for i, orientation in zip(range(12, 16), orientations, strict=True):
        request_id, origin, received = requests[i]
        events.append(at(s.CareRequestClosedWithoutSlot(
            request_id=request_id, origin=origin, cpts_id=CPTS, commune_insee="69259", departement="69",
            urgency="24h", orientation=orientation, reason="no_slot_in_window", received_at=received,
            closed_at=received + timedelta(hours=2)), received + timedelta(hours=2), SNP))
    # A patient without a médecin traitant seen and referred (identity in the event, never in the indicators).
    events.append(at(s.PatientWithoutMtSeen(
        request_id="req-1", appointment_id="apt-1", cpts_id=CPTS, commune_insee="69259", seen_by=gp(2),
        seen_at=paris("2026-03-03T13:30"), patient=s.PatientIdentity(
            family_name="Zorglub", given_name="Ninon", birth_date=date(1980, 5, 4), sex="F",
            phone="0600000000", ins_nir="280056912345678")), paris("2026-03-03T13:30"), SNP))

    weeks = 31 / 7
    expected: dict[str, float | None] = {
        "registry.members": 9,  # 10 registered, GP 8 left on 20 March
        "registry.members.active": 3,
        "registry.members.general_practitioners": 6,  # GPs 1-7 minus GP 7 deactivated (GP 8 left)
        "registry.sas_participants": 4,  # GP 3 stops in April only; nurse 9 takes part
        "registry.general_practitioners.accepting_mt": 2,
        "registry.population": 62000,
        "snp.slots.count": 24,  # 25 published, one withdrawn
        "snp.slots.hours": 53,  # 5 x (3 + 1 + 3 + 2 + 2) - 2
        "snp.slots.hours_per_week": round(53 / weeks, 1),
        "snp.slots.hours_sas_visible": 38,  # 15 + 5 + 8 + 10
        "snp.slots.sas_visible_share": round(100 * 38 / 53, 1),
        "snp.professionals.offering": 5,
        # A week of March is 31/7 weeks: GP 1 has 3.4 h of SAS-visible slots a week, GP 5 2.3 h; GP 4 1.8 h
        # (one slot withdrawn), GP 2 1.1 h, GP 3 none (visible to professionals only).
        "snp.general_practitioners.sas_2h_per_week": 2,
        "snp.general_practitioners.sas_2h_per_week_share": round(100 * 2 / 6, 1),
        "snp.requests.received": 18,
        "snp.requests.seen_within_24h": 6,  # 2, 5, 10, 20, 23 and the en-sus one (3)
        "snp.requests.seen_within_48h": 9,
        "snp.requests.seen_within_24h_share": round(100 * 6 / 18, 1),
        "snp.requests.seen_within_48h_share": round(100 * 9 / 18, 1),
        "snp.requests.delay_median": 26.5,  # of 2, 3, 5, 10, 20, 23 | 30, 40, 47, 50, 70, 80
        "snp.requests.delay_p90": 68.0,
        "snp.requests.closed_without_slot": 4,
        "snp.requests.closed_without_slot_share": round(100 * 4 / 18, 1),
        "snp.appointments.booked": 13,
        "snp.consultations.fulfilled": 10,
        "snp.consultations.en_sus": 1,
        "snp.appointments.noshow": 2,
        "snp.appointments.with_outcome": 12,
        "snp.appointments.noshow_rate": round(100 * 2 / 12, 1),
        "mt.patients_without_mt.seen_in_snp": 1,
    }
    return Scenario(events=events, expected=expected, origins=origins)


@pytest.fixture
async def database(database_url):
    """The indicators' database, migrated (no broker: events are applied as the consumer would)."""
    database = Database(database_url, service.tables)
    await upgrade(database, service.migrations, service.metadata)
    try:
        yield database
    finally:
        await database.dispose()


async def apply(database: Database, events: list[Event], *, per_transaction: int | None = None,
                refresh: bool = True) -> None:
    """Apply events as the `indicators.facts` consumer does: runs of one type per handler call,
    `per_transaction` events per transaction (default: all in one); then, unless not `refresh`, what the
    snapshot worker does with the periods they marked."""
    size = per_transaction or max(len(events), 1)
    for start in range(0, len(events), size):
        async with database.transaction() as session:
            for _, run in itertools.groupby(events[start:start + size], key=lambda e: e.type):
                await record_facts(session, list(run))
    if refresh:
        await refresh_pending(database)  # what the snapshot worker does soon after (no-op when sent inline)


async def outbox(database: Database) -> list[tuple[str, bytes]]:
    async with database.sessions() as session:
        return [(row.event_type, row.value) for row in (await session.execute(sa.text(
            "SELECT event_type, value FROM outbox_event ORDER BY id"))).all()]


class Kit:
    """What the tests share (test modules cannot import the conftest under `--import-mode=importlib`)."""

    CPTS = CPTS
    OTHER_CPTS = OTHER_CPTS
    paris = staticmethod(paris)
    at = staticmethod(at)
    gp = staticmethod(gp)
    march = staticmethod(march)
    apply = staticmethod(apply)
    outbox = staticmethod(outbox)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
