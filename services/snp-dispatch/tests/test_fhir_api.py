"""The FHIR interface of snp-dispatch (`/fhir`) on a running service: the SAS aggregator's Slot search as the
guide writes it, the shared-agenda writes (Schedule, Slot), booking by Appointment and its status updates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class

from cpts_platform.auth import LocalIssuer
from cpts_platform.db import Database
from cpts_platform.testing import running_service, settings_for
from cpts_snp_dispatch import fhir_mapping as fm
from cpts_snp_dispatch import handlers
from cpts_snp_dispatch.app import service
from cpts_snp_dispatch.domain.slots import SlotSpec
from cpts_snp_dispatch.repository import CptsView, ProfessionalView, SlotRow

CPTS = "690049999"
OTHER_CPTS = "690048888"
# 26 GPs: the first a member of CPTS, the second of OTHER_CPTS; each practises at one site, S<nn>.
IDNPS = [f"8101000000{n:02d}" for n in range(1, 27)]
MOREL, DUPONT = IDNPS[0], IDNPS[1]
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0[12]:00$")
APPOINTMENT_SYSTEM = "urn:oid:1.1.111.1.11.1.1.1"


def site(idnps: str) -> str:
    return f"S{idnps[-2:]}"


def ms(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def guide_query(ids: list[str], *, ge: datetime, le: datetime, cpts: bool = False) -> str:
    """The aggregator's query exactly as the SAS guide writes it (`|` encoded, the offsets' `+` not)."""
    identifiers = ",".join(f"{fm.IDNPS_SYSTEM}%7C{i}" for i in ids)
    query = (f"_include=Slot:schedule&_include:iterate=Schedule:actor&start=ge{ms(ge)}&start=le{ms(le)}"
             f"&schedule.actor:Practitioner.identifier={identifiers}&status=free")
    if cpts:
        query += "&_include=Slot:service-type-reference&_include:iterate=HealthcareService:organization"
    return query


@dataclass
class Fhir:
    client: httpx.AsyncClient
    database: Database
    issuer: LocalIssuer

    def token(self, role: str, **claims) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.mint(subject=f'{role}-user', roles=[role], **claims)}"}

    @property
    def regulator(self) -> dict[str, str]:
        return self.token("regulator", departements=["69"])

    @property
    def secretary(self) -> dict[str, str]:
        return self.token("secretary", cpts_ids=[CPTS])

    def professional(self, idnps: str) -> dict[str, str]:
        return self.token("professional", idnps=idnps)

    async def publish(self, idnps: str, hours: float, **choices) -> str:
        """A 15-minute slot of `idnps` starting `hours` from now, published by the service's command."""
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)
        [row] = await handlers.publish_slots(database=self.database, by="seed", specs=[SlotSpec(
            idnps=idnps, site_id=site(idnps), start=start, end=start + timedelta(minutes=15), **choices)])
        return row.slot_id

    async def search(self, ids: list[str], headers: dict[str, str] | None = None, *, days: int = 2,
                     cpts: bool = False) -> httpx.Response:
        now = datetime.now(UTC)
        query = guide_query(ids, ge=now, le=now + timedelta(days=days), cpts=cpts)
        return await self.client.get(f"/fhir/Slot?{query}", headers=headers or self.regulator)


@pytest.fixture
async def fhir(database_url, kafka_broker, topic_prefix, tmp_path, local_issuer):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        database = client.app.state.runtime.database
        now = datetime.now(UTC)
        async with database.transaction() as session:
            for n, idnps in enumerate(IDNPS):
                session.add(ProfessionalView(
                    idnps=idnps, family_name=f"Nom{n}", given_name="Camille", profession_code="10",
                    specialty_code="SM54", commune_insee="69266", updated_at=now,
                    cpts_ids=[CPTS] if idnps == MOREL else [OTHER_CPTS] if idnps == DUPONT else [],
                    sites=[{"site_id": site(idnps), "name": "Cabinet", "commune_insee": "69266",
                            "postcode": "69100", "lat": 45.766, "lon": 4.879}]))
            session.add(CptsView(cpts_id=CPTS, name="CPTS de l'Est lyonnais", communes=["69266"],
                                 departements=["69"], updated_at=now))
        yield Fhir(client=client, database=database, issuer=local_issuer)


def parsed(response: httpx.Response, status: int = 200) -> dict:
    """The FHIR body of `response`, checked: status, media type, valid for its R4B model (entries too)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(fm.FHIR_JSON)
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def resources(bundle: dict, resource_type: str | None = None) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", [])
            if resource_type is None or e["resource"]["resourceType"] == resource_type]


def slot_ids(bundle: dict) -> list[str]:
    return [r["id"] for r in resources(bundle, "Slot")]


def outcome(response: httpx.Response, status: int) -> dict:
    """The single issue of an OperationOutcome answer."""
    body = parsed(response, status)
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    return issue


# --- the aggregator's search --------------------------------------------------------------------------------

async def test_the_guides_query_for_one_practitioner_answers_a_bundle_shaped_like_the_examples(fhir):
    first = await fhir.publish(MOREL, 2, visibility=frozenset({"SNP", "PRO"}))
    second = await fhir.publish(MOREL, 3, service_type="VR", visibility=frozenset({"PUBLIC"}))
    now = datetime.now(UTC)
    query = guide_query([MOREL], ge=now, le=now + timedelta(days=2))
    bundle = parsed(await fhir.client.get(f"/fhir/Slot?{query}&_sort=start", headers=fhir.regulator))
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    assert bundle["meta"]["profile"] == [fm.BUNDLE_PROFILE]
    # The query echoed as sent; `_sort`, not supported, is left out.
    assert bundle["link"] == [{"relation": "self", "url": f"http://service/fhir/Slot?{query}"}]
    assert [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]] == [
        ("Slot", "match"), ("Schedule", "include"), ("Practitioner", "include"),
        ("PractitionerRole", "include"), ("Slot", "match")]
    assert slot_ids(bundle) == [first, second]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"http://service/fhir/{resource['resourceType']}/{resource['id']}"
    slot, agenda, practitioner, role, _ = resources(bundle)
    assert slot["meta"] == {"profile": [fm.SLOT_PROFILE], "security": [
        {"system": fm.TRE_R314_TYPE_CRENEAU, "code": "PRO"},
        {"system": fm.TRE_R314_TYPE_CRENEAU, "code": "SNP"}]}
    assert slot["serviceType"] == [{"coding": [{"system": fm.ACT_CODE, "code": "AMB"}]}]
    assert slot["appointmentType"] == {"coding": [{"system": fm.APPOINTMENT_TYPE, "code": "ROUTINE"}]}
    assert slot["status"] == "free" and INSTANT.match(slot["start"]) and INSTANT.match(slot["end"])
    assert slot["comment"] == f"http://127.0.0.1:8000/rendez-vous?creneau={first}"
    assert slot["schedule"] == {"reference": f"Schedule/{agenda['id']}"}
    assert agenda["actor"] == [{"reference": f"Practitioner/{MOREL}"},
                               {"reference": f"PractitionerRole/{MOREL}-S01"}]
    assert practitioner["identifier"][0]["value"] == MOREL and role["id"] == f"{MOREL}-S01"
    assert role["contained"][0]["address"]["city"] == "Villeurbanne"
    assert role["contained"][0]["position"] == {"latitude": 45.766, "longitude": 4.879}


async def test_the_guides_query_answers_25_practitioners_and_refuses_26_naming_the_parameter(fhir):
    for hours, idnps in enumerate(IDNPS, start=1):
        await fhir.publish(idnps, hours, visibility=frozenset({"SNP"}))
    bundle = parsed(await fhir.search(IDNPS[:25], days=3))
    assert bundle["total"] == 25
    assert {p["id"] for p in resources(bundle, "Practitioner")} == set(IDNPS[:25])
    issue = outcome(await fhir.search(IDNPS), 400)
    assert issue["expression"] == [fm.PRACTITIONER_PARAM]
    assert "25" in issue["diagnostics"] and "26" in issue["diagnostics"]


async def test_status_free_leaves_out_booked_held_and_withdrawn_slots(fhir):
    free, booked, held, withdrawn = [await fhir.publish(MOREL, h) for h in (2, 3, 4, 5)]
    async with fhir.database.transaction() as session:
        await session.exec(sa.update(SlotRow).where(SlotRow.slot_id == booked).values(status="booked"))
        await session.exec(sa.update(SlotRow).where(SlotRow.slot_id == held).values(
            held_until=datetime.now(UTC) + timedelta(minutes=3), hold_id="h1"))
    await handlers.withdraw_slot(database=fhir.database, slot_id=withdrawn)
    assert slot_ids(parsed(await fhir.search([MOREL]))) == [free]


async def test_no_slot_starting_before_now_is_served_whatever_the_window(fhir):
    ahead = await fhir.publish(MOREL, 1)
    now = datetime.now(UTC).replace(microsecond=0)
    async with fhir.database.transaction() as session:
        session.add(SlotRow(slot_id="started", idnps=MOREL, site_id="S01", schedule_id="none",
                            start=now - timedelta(minutes=10), end=now + timedelta(minutes=5),
                            service_type="AMB", vis_snp=True, published_by="seed", published_at=now,
                            updated_at=now))
    query = guide_query([MOREL], ge=now - timedelta(days=1), le=now + timedelta(days=1))
    assert slot_ids(parsed(await fhir.client.get(f"/fhir/Slot?{query}", headers=fhir.regulator))) == [ahead]


async def test_each_role_sees_the_slots_of_its_visibility(fhir):
    snp, pro, public, cpts = [await fhir.publish(MOREL, h, visibility=frozenset({v}))
                              for h, v in ((2, "SNP"), (3, "PRO"), (4, "PUBLIC"), (5, "CPTS"))]
    other_cpts = await fhir.publish(DUPONT, 6, visibility=frozenset({"CPTS"}))
    both = [MOREL, DUPONT]
    assert slot_ids(parsed(await fhir.search(both, fhir.regulator))) == [snp, pro, public]
    assert slot_ids(parsed(await fhir.search(both, fhir.professional(IDNPS[5])))) == [pro, public]
    assert slot_ids(parsed(await fhir.search(both, fhir.secretary))) == [public, cpts]
    everything = parsed(await fhir.search(both, fhir.token("admin")))
    assert slot_ids(everything) == [snp, pro, public, cpts, other_cpts]
    forbidden = await fhir.search(both, fhir.token("ars"))
    assert forbidden.status_code == 403 and forbidden.headers["content-type"] == "application/problem+json"
    assert (await fhir.client.get("/fhir/Slot")).status_code == 401


async def test_the_cpts_variant_brings_the_cpts_service_and_organization(fhir):
    cpts_slot = await fhir.publish(MOREL, 2, visibility=frozenset({"PUBLIC", "CPTS"}))
    bundle = parsed(await fhir.search([MOREL], cpts=True))
    assert bundle["meta"]["profile"] == [fm.CPTS_BUNDLE_PROFILE]
    assert [r["resourceType"] for r in resources(bundle)] == [
        "Slot", "Schedule", "Practitioner", "PractitionerRole", "HealthcareService", "Organization"]
    slot, *_, healthcare_service, organization = resources(bundle)
    assert slot["id"] == cpts_slot and slot["meta"]["profile"] == [fm.CPTS_SLOT_PROFILE]
    assert slot["serviceType"][1] == {
        "extension": [{"url": fm.SLOT_SERVICE_TYPE_EXTENSION,
                       "valueReference": {"reference": f"HealthcareService/cpts-{CPTS}"}}],
        "coding": [{"system": fm.TRE_R66_CATEGORIE, "code": "604"}]}
    assert healthcare_service["providedBy"] == {"reference": f"Organization/{CPTS}"}
    assert organization["identifier"][0]["value"] == f"1{CPTS}"
    assert organization["name"] == "CPTS de l'Est lyonnais"


@pytest.mark.parametrize(("change", "parameter"), [
    (lambda q: q.replace("&status=free", ""), "status"),
    (lambda q: q.replace("status=free", "status=busy"), "status"),
    (lambda q: re.sub(r"&start=le[^&]+", "", q), "start"),
    (lambda q: re.sub(r"start=ge[^&]+", "start=ge2026-13-45", q), "start"),
    (lambda q: re.sub(r"start=ge[^&]+", "start=gt2026-01-05", q), "start"),
    (lambda q: re.sub(r"start=ge[^&]+", "start=ge2026-01-05T08:00:00", q), "start"),
    (lambda q: q.replace("Schedule:actor", "Schedule:patient"), "_include"),
    (lambda q: q.replace(fm.IDNPS_SYSTEM, "urn:oid:1.2.3"), fm.PRACTITIONER_PARAM),
    (lambda q: re.sub(r"&schedule\.actor[^&]+", "", q), fm.PRACTITIONER_PARAM),
    (lambda q: q + "&_count=zero", "_count"),
])
async def test_a_bad_search_is_a_400_operation_outcome_naming_the_parameter(fhir, change, parameter):
    now = datetime.now(UTC)
    query = change(guide_query([MOREL], ge=now, le=now + timedelta(days=1)))
    issue = outcome(await fhir.client.get(f"/fhir/Slot?{query}", headers=fhir.regulator), 400)
    assert issue["expression"] == [parameter]


async def test_count_caps_the_slots_served_and_total_counts_them_all(fhir):
    first, _, _ = [await fhir.publish(MOREL, h) for h in (2, 3, 4)]
    now = datetime.now(UTC)
    query = guide_query([MOREL], ge=now, le=now + timedelta(days=1)) + "&_count=1"
    bundle = parsed(await fhir.client.get(f"/fhir/Slot?{query}", headers=fhir.regulator))
    assert slot_ids(bundle) == [first] and bundle["total"] == 3


# --- Schedule and Slot writes (GAP) -------------------------------------------------------------------------

def schedule_body(idnps: str, role: str | None = None) -> dict:
    return {"resourceType": "Schedule", "actor": [
        {"identifier": {"system": fm.IDNPS_SYSTEM, "value": idnps}},
        {"reference": f"PractitionerRole/{role or f'{idnps}-{site(idnps)}'}"}]}


def slot_body(schedule_id: str, start: datetime, minutes: int = 20, **changes) -> dict:
    body = {"resourceType": "Slot",
            "meta": {"security": [{"system": fm.TRE_R314_TYPE_CRENEAU, "code": "SNP"},
                                  {"system": fm.TRE_R314_TYPE_CRENEAU, "code": "PUBLIC"}]},
            "serviceType": [{"coding": [{"system": fm.ACT_CODE, "code": "HH"}]}],
            "appointmentType": {"coding": [{"system": fm.APPOINTMENT_TYPE, "code": "ROUTINE"}]},
            "schedule": {"reference": f"Schedule/{schedule_id}"}, "status": "free",
            "start": ms(start), "end": ms(start + timedelta(minutes=minutes))}
    return body | changes


async def test_a_schedule_then_a_slot_posted_in_fhir_are_found_by_the_search(fhir):
    gp = fhir.professional(MOREL)
    created = await fhir.client.post("/fhir/Schedule", json=schedule_body(MOREL), headers=gp)
    agenda = parsed(created, 201)
    assert created.headers["location"] == f"http://service/fhir/Schedule/{agenda['id']}"
    # The secretary of Morel's CPTS finds the same agenda.
    again = await fhir.client.post("/fhir/Schedule", json=schedule_body(MOREL), headers=fhir.secretary)
    assert parsed(again)["id"] == agenda["id"]
    assert parsed(await fhir.client.get(f"/fhir/Schedule/{agenda['id']}", headers=fhir.regulator)) == agenda

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    posted = await fhir.client.post("/fhir/Slot", json=slot_body(agenda["id"], start), headers=gp)
    slot = parsed(posted, 201)
    assert posted.headers["location"] == f"http://service/fhir/Slot/{slot['id']}"
    assert (slot["schedule"], slot["serviceType"][0]["coding"][0]["code"], slot["status"]) == (
        {"reference": f"Schedule/{agenda['id']}"}, "HH", "free")
    assert {s["code"] for s in slot["meta"]["security"]} == {"SNP", "PUBLIC"}
    assert datetime.fromisoformat(slot["start"]) == start

    bundle = parsed(await fhir.search([MOREL]))
    assert resources(bundle, "Slot") == [slot]
    assert parsed(await fhir.client.get(f"/fhir/Slot/{slot['id']}", headers=fhir.regulator)) == slot


async def test_schedules_are_created_only_by_the_professional_or_their_cpts_and_at_their_sites(fhir):
    post = fhir.client.post
    outsider = await post("/fhir/Schedule", json=schedule_body(MOREL), headers=fhir.professional(DUPONT))
    other_cpts = await post("/fhir/Schedule", json=schedule_body(DUPONT), headers=fhir.secretary)
    assert outsider.status_code == other_cpts.status_code == 403
    elsewhere = await post("/fhir/Schedule", json=schedule_body(MOREL, f"{MOREL}-S99"),
                           headers=fhir.professional(MOREL))
    assert outcome(elsewhere, 422)["expression"] == ["Schedule.actor"]
    unknown = await post("/fhir/Schedule", json=schedule_body("810199999999"), headers=fhir.token("admin"))
    assert outcome(unknown, 422)["expression"] == ["Schedule.actor"]
    not_json = await post("/fhir/Schedule", content=b"{", headers=fhir.professional(MOREL))
    assert outcome(not_json, 400)["code"] == "structure"


async def test_overlapping_past_and_malformed_slots_are_refused_naming_the_element(fhir):
    gp = fhir.professional(MOREL)
    agenda = parsed(await fhir.client.post("/fhir/Schedule", json=schedule_body(MOREL), headers=gp), 201)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    later = start + timedelta(hours=1)
    parsed(await fhir.client.post("/fhir/Slot", json=slot_body(agenda["id"], start), headers=gp), 201)

    async def refused(body: dict, status: int, element: str) -> None:
        issue = outcome(await fhir.client.post("/fhir/Slot", json=body, headers=gp), status)
        assert issue["expression"] == [element], issue

    await refused(slot_body(agenda["id"], start + timedelta(minutes=10)), 409, "Slot.start")
    await refused(slot_body(agenda["id"], start - timedelta(days=1)), 422, "Slot.start")
    await refused(slot_body(agenda["id"], later, minutes=-10), 422, "Slot.end")
    await refused(slot_body(agenda["id"], later, serviceType=[
        {"coding": [{"system": fm.ACT_CODE, "code": "AMB"}]},
        {"coding": [{"system": fm.ACT_CODE, "code": "VR"}]}]), 422, "Slot.serviceType")
    await refused(slot_body(agenda["id"], later, meta={"security": [
        {"system": fm.TRE_R314_TYPE_CRENEAU, "code": "VIP"}]}), 422, "Slot.meta.security")
    await refused(slot_body("nope", later), 422, "Slot.schedule")
    await refused(slot_body(agenda["id"], later) | {"start": "tomorrow"}, 400, "Slot.start")
    forbidden = await fhir.client.post("/fhir/Slot", json=slot_body(agenda["id"], later),
                                       headers=fhir.professional(DUPONT))
    assert forbidden.status_code == 403


# --- Appointments -------------------------------------------------------------------------------------------

def appointment_body(value: str, *, slot_id: str | None = None, status: str = "booked", **changes) -> dict:
    body = {"resourceType": "Appointment", "meta": {"profile": [fm.APPOINTMENT_PROFILE]},
            "identifier": [{"system": APPOINTMENT_SYSTEM, "value": value}], "status": status,
            "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": MOREL}},
                             "status": "accepted"}]}
    if slot_id:
        body["slot"] = [{"reference": f"Slot/{slot_id}"}]
    return body | changes


async def test_an_appointment_books_the_slot_and_a_second_booking_of_it_gets_409(fhir):
    slot_id = await fhir.publish(MOREL, 3)
    created = await fhir.client.post("/fhir/Appointment", json=appointment_body("rdv-1", slot_id=slot_id),
                                     headers=fhir.regulator)
    appointment = parsed(created, 201)
    assert created.headers["location"] == f"http://service/fhir/Appointment/{appointment['id']}"
    assert appointment["meta"]["profile"] == [fm.APPOINTMENT_PROFILE]
    assert appointment["identifier"] == [{"system": APPOINTMENT_SYSTEM, "value": "rdv-1"}]
    assert (appointment["status"], appointment["slot"]) == ("booked", [{"reference": f"Slot/{slot_id}"}])
    assert appointment["participant"][0]["actor"]["identifier"]["value"] == MOREL
    assert INSTANT.match(appointment["start"])
    assert slot_ids(parsed(await fhir.search([MOREL]))) == []

    second = await fhir.client.post("/fhir/Appointment", json=appointment_body("rdv-2", slot_id=slot_id),
                                    headers=fhir.secretary)
    issue = outcome(second, 409)
    assert issue["code"] == "conflict" and issue["expression"] == ["Appointment.slot"]
    assert "booked" in issue["diagnostics"]
    read = await fhir.client.get(f"/fhir/Appointment/{appointment['id']}", headers=fhir.regulator)
    assert parsed(read) == appointment


async def test_an_appointment_without_slot_reference_books_the_professionals_slot_at_its_start(fhir):
    slot_id = await fhir.publish(MOREL, 4)
    async with fhir.database.sessions() as session:
        start = (await session.get(SlotRow, slot_id)).start
    created = await fhir.client.post("/fhir/Appointment", json=appointment_body("rdv-sas", start=ms(start)),
                                     headers=fhir.regulator)
    assert parsed(created, 201)["slot"] == [{"reference": f"Slot/{slot_id}"}]
    other_time = appointment_body("rdv-sas-2", start=ms(start + timedelta(minutes=1)))
    issue = outcome(await fhir.client.post("/fhir/Appointment", json=other_time, headers=fhir.regulator), 422)
    assert issue["expression"] == ["Appointment.start"]


async def test_appointments_are_created_booked_on_slots_the_caller_sees(fhir):
    snp_only = await fhir.publish(DUPONT, 2, visibility=frozenset({"SNP"}))  # not of the secretary's CPTS
    post = fhir.client.post
    cancelled = appointment_body("rdv-x", slot_id=snp_only, status="cancelled")
    assert outcome(await post("/fhir/Appointment", json=cancelled, headers=fhir.regulator),
                   422)["expression"] == ["Appointment.status"]
    hidden = await post("/fhir/Appointment", json=appointment_body("rdv-y", slot_id=snp_only),
                        headers=fhir.secretary)
    assert outcome(hidden, 404)["expression"] == ["Appointment.slot"]
    ars = await post("/fhir/Appointment", json=appointment_body("rdv-z", slot_id=snp_only),
                     headers=fhir.token("ars"))
    assert ars.status_code == 403


async def test_put_by_identifier_records_fulfilled_and_a_cancellation_frees_the_slot(fhir):
    seen, missed = await fhir.publish(MOREL, 2), await fhir.publish(MOREL, 3)
    for value, slot_id in (("rdv-seen", seen), ("rdv-missed", missed)):
        parsed(await fhir.client.post("/fhir/Appointment", json=appointment_body(value, slot_id=slot_id),
                                      headers=fhir.regulator), 201)

    async def put(value: str, status: str, headers=None, **changes) -> httpx.Response:
        return await fhir.client.put(f"/fhir/Appointment?identifier={APPOINTMENT_SYSTEM}|{value}",
                                     json=appointment_body(value, status=status, **changes),
                                     headers=headers or fhir.regulator)

    fulfilled = await put("rdv-seen", "fulfilled", headers=fhir.professional(MOREL))
    assert parsed(fulfilled)["status"] == "fulfilled"
    assert outcome(await put("rdv-seen", "cancelled"), 409)["expression"] == ["Appointment.status"]
    cancelled = parsed(await put("rdv-missed", "cancelled", cancelationReason={
        "coding": [{"system": fm.CANCELLATION_REASON, "code": "pat-crs"}]}))
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"] == {"coding": [{"system": fm.CANCELLATION_REASON, "code": "pat"}]}
    assert parsed(await put("rdv-missed", "cancelled"))["status"] == "cancelled"  # idempotent
    assert outcome(await put("rdv-missed", "booked"), 409)["expression"] == ["Appointment.status"]
    assert slot_ids(parsed(await fhir.search([MOREL]))) == [missed]  # free again, and bookable again
    rebooked = await fhir.client.post("/fhir/Appointment", json=appointment_body("rdv-again", slot_id=missed),
                                      headers=fhir.secretary)
    assert parsed(rebooked, 201)["status"] == "booked"

    assert outcome(await put("unknown", "cancelled"), 404)["expression"] == ["Appointment"]
    outsider = await put("rdv-seen", "noshow", headers=fhir.professional(DUPONT))
    assert outcome(outsider, 404)["code"] == "not-found"
    mismatch = await fhir.client.put(f"/fhir/Appointment?identifier={APPOINTMENT_SYSTEM}|rdv-seen",
                                     json=appointment_body("rdv-missed", status="noshow"),
                                     headers=fhir.regulator)
    assert outcome(mismatch, 400)["expression"] == ["Appointment.identifier"]
    no_identifier = await fhir.client.put("/fhir/Appointment", headers=fhir.regulator,
                                          json=appointment_body("rdv-seen", status="noshow"))
    assert outcome(no_identifier, 400)["expression"] == ["identifier"]
