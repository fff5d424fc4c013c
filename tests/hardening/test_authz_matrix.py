"""The access policy of every endpoint of the four services, role by role, in scope and out of scope.

Each service runs in-process on a small world: two CPTS in two départements (A: CPTS de l'Est lyonnais,
Rhône 69; B: a CPTS of the Isère, 38), a GP in each (GP_A member of A, GP_B of B), care requests, slots,
appointments, patients, duplicates, rounds and proposals of A. Every route of every app (enumerated from its
OpenAPI document: a route missing from the tables below fails `test_every_route_has_an_expected_access`) is
called with the token of every case: regulator, secretary, coordinator, professional and ARS each in scope
(A / 69 / GP_A) and out of scope (B / 38 / GP_B), an admin, and a token with no role.

Expected answers: "ok" (2xx), "403" (role or scope refused), "404" (the record's existence is private),
"pass" (the caller is let through: anything but 401/403 and 5xx, for reads of unknown ids).

The policy (README, DOMAIN.md): regulators see the requests of their départements; secretaries and
coordinators those of their CPTS and its patients' records; a GP their own agenda and the proposals addressed to
them; the ARS the aggregated indicators of its départements, never a patient record; the directory (registry)
is public to every role; only admins query the audit trail.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from cpts_platform.auth import LocalIssuer
from cpts_platform.service import ServiceDefinition, create_app
from cpts_platform.testing import running_service, settings_for

A, B = "690049999", "380049999"
GP_A, GP_B = "810100000001", "810100000004"

CASES: dict[str, tuple[str | None, dict[str, Any]]] = {
    "regulator/in": ("regulator", {"departements": ["69"]}),
    "regulator/out": ("regulator", {"departements": ["38"]}),
    "secretary/in": ("secretary", {"cpts_ids": [A]}),
    "secretary/out": ("secretary", {"cpts_ids": [B]}),
    "coordinator/in": ("coordinator", {"cpts_ids": [A]}),
    "coordinator/out": ("coordinator", {"cpts_ids": [B]}),
    "professional/in": ("professional", {"idnps": GP_A}),
    "professional/out": ("professional", {"idnps": GP_B}),
    "ars/in": ("ars", {"departements": ["69"]}),
    "ars/out": ("ars", {"departements": ["38"]}),
    "admin": ("admin", {}),
    "none": (None, {}),
}
ALL_ROLES = frozenset({"regulator", "secretary", "coordinator", "professional", "ars"})


def expect(*roles: str, out: str = "403", **overrides: str) -> dict[str, str]:
    """The expected answer per case: "ok" in scope for `roles` (and for the admin), `out` out of their scope,
    "403" for every other role; `overrides` by case name (`regulator_in="404"`)."""
    table = {}
    for case, (role, _) in CASES.items():
        if role is None:
            table[case] = "403"
        elif role == "admin":
            table[case] = "ok"
        elif role not in roles:
            table[case] = "403"
        else:
            table[case] = "ok" if case.endswith("/in") else out
    for key, value in overrides.items():
        table[key.replace("_", "/", 1) if key != "admin" else key] = value
    return table


PUBLIC = {case: "ok" for case in CASES}  # health checks: no token needed
ADMIN_ONLY = expect()

Call = Callable[["World", dict[str, str], str], Awaitable[httpx.Response]]


@dataclass
class Rule:
    expected: dict[str, str]
    call: Call


@dataclass
class World:
    client: httpx.AsyncClient
    issuer: LocalIssuer
    ids: dict[str, Any] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, case: str) -> dict[str, str]:
        if case not in self.tokens:
            role, claims = CASES[case]
            self.tokens[case] = self.issuer.mint(subject=case.replace("/", "-"), roles=[role] if role else [],
                                                 **claims)
        return {"Authorization": f"Bearer {self.tokens[case]}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin")

    def n(self) -> int:
        return next(self.counter)

    async def ok(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs) -> Any:
        response = await self.client.request(method, url, headers=headers or self.admin, **kwargs)
        assert response.status_code < 300, (method, url, response.status_code, response.text)
        return response.json() if response.content else None


def verdict(status: int, wanted: str) -> bool:
    if wanted == "ok":
        return 200 <= status < 300
    if wanted == "pass":
        return status not in (401, 403) and status < 500
    return status == int(wanted)


async def run_matrix(world: World, rules: dict[tuple[str, str], Rule]) -> int:
    """Every (route, case); fails with every mismatch at once. Returns the number of calls."""
    mismatches, tried = [], 0
    for (method, path), rule in rules.items():
        for case in CASES:
            wanted = rule.expected[case]
            response = await rule.call(world, world.headers(case), case)
            tried += 1
            if not verdict(response.status_code, wanted):
                mismatches.append(f"{method} {path} as {case}: {response.status_code} (expected {wanted}) "
                                  f"{response.text[:160]}")
    print(f"\n{tried} (route, role, scope) cases tried on {len(rules)} routes")
    assert not mismatches, "\n".join(mismatches)
    return tried


def get(url: str | Callable[[World], str], **kwargs) -> Call:
    async def call(w: World, h: dict[str, str], case: str) -> httpx.Response:
        return await w.client.get(url(w) if callable(url) else url, headers=h, **kwargs)
    return call


def at(hours: float) -> str:
    moment = datetime.now(UTC) + timedelta(hours=hours)
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0).isoformat()


def fhir_instant(hours: float) -> str:
    moment = datetime.fromisoformat(at(hours))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


# --- Registry -----------------------------------------------------------------------------------------------


def _registry_rules() -> dict[tuple[str, str], Rule]:
    reader = expect(*ALL_ROLES, out="ok")
    coordinator = expect("coordinator")
    own = expect("professional")

    async def new_professional(w: World, h, case) -> httpx.Response:
        n = w.n()
        return await w.client.post("/professionals", headers=h, json={
            "idnps": f"8101000009{n:02d}", "family_name": "Nouveau", "given_name": "Médecin",
            "profession_code": "10", "specialty_code": "SM54", "commune_insee": "69266", "cpts_ids": [A]})

    async def fresh(w: World) -> str:
        n = w.n()
        idnps = f"8101000008{n:02d}"
        await w.ok("POST", "/professionals", json={"idnps": idnps, "family_name": "Fresh", "given_name": "A",
                                                   "profession_code": "10", "cpts_ids": [A]})
        return idnps

    async def deactivate(w: World, h, case) -> httpx.Response:
        return await w.client.post(f"/professionals/{await fresh(w)}/deactivate", headers=h)

    async def remove_member(w: World, h, case) -> httpx.Response:
        return await w.client.delete(f"/cpts/{A}/members/{await fresh(w)}", headers=h)

    async def new_cpts(w: World, h, case) -> httpx.Response:
        return await w.client.post("/cpts", headers=h, json={
            "cpts_id": "010000101", "name": "CPTS de Bourg-en-Bresse", "communes": ["01053"]})

    def send(method: str, url: str, body: dict | None = None) -> Call:
        async def call(w: World, h, case) -> httpx.Response:
            return await w.client.request(method, url, headers=h, json=body)
        return call

    sas = {"mode": "cpts", "hours_per_week": 2, "start_date": date.today().isoformat()}
    return {
        ("GET", "/healthz"): Rule(PUBLIC, get("/healthz")),
        ("GET", "/readyz"): Rule(PUBLIC, get("/readyz")),
        ("GET", "/readyz/traffic"): Rule(PUBLIC, get("/readyz/traffic")),
        ("POST", "/professionals"): Rule(coordinator, new_professional),
        ("GET", "/professionals"): Rule(reader, get("/professionals")),
        ("GET", "/professionals/{idnps}"): Rule(reader, get(f"/professionals/{GP_A}")),
        ("PATCH", "/professionals/{idnps}"): Rule(ADMIN_ONLY, send("PATCH", f"/professionals/{GP_A}",
                                                                   {"given_name": "Anne"})),
        ("POST", "/professionals/{idnps}/deactivate"): Rule(ADMIN_ONLY, deactivate),
        ("PUT", "/professionals/{idnps}/sas-participation"): Rule(
            own, send("PUT", f"/professionals/{GP_A}/sas-participation", sas)),
        ("DELETE", "/professionals/{idnps}/sas-participation"): Rule(
            own, send("DELETE", f"/professionals/{GP_A}/sas-participation")),
        ("PUT", "/professionals/{idnps}/mt-capacity"): Rule(
            own, send("PUT", f"/professionals/{GP_A}/mt-capacity", {"accepting": True,
                                                                    "new_patients_per_month": 4})),
        ("POST", "/cpts"): Rule(ADMIN_ONLY, new_cpts),
        ("GET", "/cpts"): Rule(reader, get("/cpts")),
        ("GET", "/cpts/{cpts_id}"): Rule(reader, get(f"/cpts/{A}")),
        ("PUT", "/cpts/{cpts_id}/territory"): Rule(coordinator, send("PUT", f"/cpts/{A}/territory",
                                                                     {"communes": ["69266", "69259"]})),
        ("PUT", "/cpts/{cpts_id}/stage"): Rule(ADMIN_ONLY, send("PUT", f"/cpts/{A}/stage",
                                                                {"stage": "aci_signed",
                                                                 "aci_signed_on": "2024-03-01"})),
        ("GET", "/cpts/{cpts_id}/members"): Rule(reader, get(f"/cpts/{A}/members")),
        ("PUT", "/cpts/{cpts_id}/members/{idnps}"): Rule(coordinator, send(
            "PUT", f"/cpts/{A}/members/{GP_A}", {"status": "active"})),
        ("DELETE", "/cpts/{cpts_id}/members/{idnps}"): Rule(coordinator, remove_member),
        ("GET", "/communes"): Rule(reader, get("/communes", params={"q": "Villeur"})),
        ("GET", "/communes/{insee}"): Rule(reader, get("/communes/69266")),
        ("GET", "/fhir/Practitioner/{id}"): Rule(reader, get(f"/fhir/Practitioner/{GP_A}")),
        ("GET", "/fhir/Practitioner"): Rule(reader, get("/fhir/Practitioner")),
        ("GET", "/fhir/PractitionerRole/{id}"): Rule(  # an unknown role: 404 to every reader
            {case: "403" if role is None else "pass" for case, (role, _) in CASES.items()},
            get(f"/fhir/PractitionerRole/{GP_A}-nowhere")),
        ("GET", "/fhir/PractitionerRole"): Rule(reader, get("/fhir/PractitionerRole")),
        ("GET", "/fhir/Organization/{id}"): Rule(reader, get(f"/fhir/Organization/{A}")),
        ("GET", "/fhir/Organization"): Rule(reader, get("/fhir/Organization")),
        ("GET", "/fhir/HealthcareService/{id}"): Rule(reader, get(f"/fhir/HealthcareService/cpts-{A}")),
        ("GET", "/fhir/HealthcareService"): Rule(reader, get("/fhir/HealthcareService")),
    }


async def _registry_world(w: World) -> None:
    await w.ok("POST", "/cpts", json={"cpts_id": A, "name": "CPTS de l'Est lyonnais",
                                      "communes": ["69266", "69259"], "stage": "aci_signed",
                                      "aci_signed_on": "2024-03-01"})
    await w.ok("POST", "/cpts", json={"cpts_id": B, "name": "CPTS du Grésivaudan", "communes": ["38185"]})
    for idnps, commune, cpts_id in ((GP_A, "69266", A), (GP_B, "38185", B)):
        await w.ok("POST", "/professionals", json={
            "idnps": idnps, "family_name": "Morel" if idnps == GP_A else "Dupont", "given_name": "A",
            "profession_code": "10", "specialty_code": "SM54", "commune_insee": commune, "cpts_ids": [cpts_id]})


# --- snp-dispatch -------------------------------------------------------------------------------------------


class Dispatch(World):
    async def request(self) -> str:
        body = {"origin": "sas", "cpts_id": A, "patient": {
            "family_name": "Lambert", "given_name": "Rose", "birth_date": "1950-03-02", "sex": "F"},
            "location": {"commune_insee": "69266"}, "reason_category": "fever", "urgency": "48h",
            "mt_none": True, "consent_mt_referral": True}
        return (await self.ok("POST", "/care-requests", json=body))["request_id"]

    async def slot(self) -> str:
        start = 2 + self.n() * 0.5
        [slot] = await self.ok("POST", "/slots", json={"idnps": GP_A, "site_id": "S01", "slots": [
            {"start": at(start), "end": at(start + 0.25), "visibility": ["PRO", "SNP", "CPTS"]}]})
        return slot["slot_id"]

    async def hold(self) -> tuple[str, str, str]:
        slot, request = await self.slot(), await self.request()
        hold = await self.ok("POST", f"/slots/{slot}/hold", json={"request_id": request})
        return slot, hold["hold_id"], request

    async def appointment(self) -> str:
        slot, request = await self.slot(), await self.request()
        booked = await self.ok("POST", "/appointments", json={"slot_id": slot, "request_id": request})
        return booked["appointment_id"]

    async def fhir_appointment(self) -> tuple[str, str]:
        """An appointment booked in FHIR by the regulator in scope: (id, identifier value)."""
        from cpts_snp_dispatch import fhir_mapping as fm

        value = f"rdv-{self.n()}"
        body = {"resourceType": "Appointment", "meta": {"profile": [fm.APPOINTMENT_PROFILE]},
                "identifier": [{"system": "urn:oid:1.1.111.1.11.1.1.1", "value": value}], "status": "booked",
                "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": GP_A}},
                                 "status": "accepted"}],
                "slot": [{"reference": f"Slot/{await self.slot()}"}]}
        created = await self.ok("POST", "/fhir/Appointment", headers=self.headers("regulator/in"), json=body)
        return created["id"], value


def _dispatch_rules() -> dict[tuple[str, str], Rule]:
    from cpts_snp_dispatch import fhir_mapping as fm

    dispatcher = ("regulator", "secretary", "coordinator")
    manager = ("professional", "secretary", "coordinator")
    booker = ("regulator", "secretary", "coordinator", "professional")
    request_scoped = expect(*dispatcher, out="404")

    def with_request(method: str, suffix: str = "", body: dict | None = None) -> Call:
        async def call(w: Dispatch, h, case) -> httpx.Response:
            return await w.client.request(method, f"/care-requests/{await w.request()}{suffix}", headers=h,
                                          json=body)
        return call

    async def create_request(w: Dispatch, h, case) -> httpx.Response:
        origin = "cpts_phone" if case.split("/")[0] in ("secretary", "coordinator") else "sas"
        return await w.client.post("/care-requests", headers=h, json={
            "origin": origin, "cpts_id": A, "patient": {"family_name": "Lambert", "given_name": "Rose",
                                                        "birth_date": "1950-03-02", "sex": "F"},
            "location": {"commune_insee": "69266"}, "reason_category": "fever", "urgency": "48h",
            "mt_none": True, "consent_mt_referral": True})

    async def publish(w: Dispatch, h, case) -> httpx.Response:
        start = 2 + w.n() * 0.5
        return await w.client.post("/slots", headers=h, json={"idnps": GP_A, "site_id": "S01", "slots": [
            {"start": at(start), "end": at(start + 0.25)}]})

    async def recurring(w: Dispatch, h, case) -> httpx.Response:
        first = date.today() + timedelta(days=60 + 7 * w.n())
        return await w.client.post("/slots/recurring", headers=h, json={
            "idnps": GP_A, "site_id": "S01", "weekdays": [first.isoweekday()], "start_time": "14:00",
            "end_time": "14:30", "slot_minutes": 15, "first_day": first.isoformat(), "weeks": 1})

    def on_slot(method: str, suffix: str = "", body: dict | None = None) -> Call:
        async def call(w: Dispatch, h, case) -> httpx.Response:
            return await w.client.request(method, f"/slots/{await w.slot()}{suffix}", headers=h, json=body)
        return call

    async def hold(w: Dispatch, h, case) -> httpx.Response:
        slot, request = await w.slot(), await w.request()
        return await w.client.post(f"/slots/{slot}/hold", headers=h, json={"request_id": request})

    async def release(w: Dispatch, h, case) -> httpx.Response:
        slot, hold_id, _ = await w.hold()
        return await w.client.delete(f"/slots/{slot}/hold/{hold_id}", headers=h)

    async def book(w: Dispatch, h, case) -> httpx.Response:
        slot = await w.slot()
        body: dict[str, Any] = {"slot_id": slot}
        if not case.startswith("professional"):  # a GP books their own slot; the others for a request
            body["request_id"] = await w.request()
        return await w.client.post("/appointments", headers=h, json=body)

    async def en_sus(w: Dispatch, h, case) -> httpx.Response:
        return await w.client.post("/appointments/en-sus", headers=h,
                                   json={"request_id": await w.request(), "idnps": GP_A})

    def on_appointment(method: str, suffix: str = "", body: dict | None = None, fresh: bool = True) -> Call:
        async def call(w: Dispatch, h, case) -> httpx.Response:
            appointment = await w.appointment() if fresh else w.ids["appointment"]
            return await w.client.request(method, f"/appointments/{appointment}{suffix}", headers=h, json=body)
        return call

    async def fhir_slot(w: Dispatch, h, case) -> httpx.Response:
        start = 2 + w.n() * 0.5
        return await w.client.post("/fhir/Slot", headers=h, json={
            "resourceType": "Slot", "schedule": {"reference": f"Schedule/{w.ids['schedule']}"}, "status": "free",
            "meta": {"security": [{"system": fm.TRE_R314_TYPE_CRENEAU, "code": "SNP"}]},
            "serviceType": [{"coding": [{"system": fm.ACT_CODE, "code": "AMB"}]}],
            "start": fhir_instant(start), "end": fhir_instant(start + 0.25)})

    async def fhir_schedule(w: Dispatch, h, case) -> httpx.Response:
        return await w.client.post("/fhir/Schedule", headers=h, json={"resourceType": "Schedule", "actor": [
            {"identifier": {"system": fm.IDNPS_SYSTEM, "value": GP_A}}, {"reference": f"PractitionerRole/{GP_A}-S01"}]})

    async def fhir_book(w: Dispatch, h, case) -> httpx.Response:
        return await w.client.post("/fhir/Appointment", headers=h, json={
            "resourceType": "Appointment", "meta": {"profile": [fm.APPOINTMENT_PROFILE]},
            "identifier": [{"system": "urn:oid:1.1.111.1.11.1.1.1", "value": f"rdv-x{w.n()}"}],
            "status": "booked", "slot": [{"reference": f"Slot/{await w.slot()}"}],
            "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": GP_A}},
                             "status": "accepted"}]})

    async def fhir_read(w: Dispatch, h, case) -> httpx.Response:
        appointment, _ = await w.fhir_appointment()
        return await w.client.get(f"/fhir/Appointment/{appointment}", headers=h)

    async def fhir_update(w: Dispatch, h, case) -> httpx.Response:
        _, value = await w.fhir_appointment()
        identifier = f"urn:oid:1.1.111.1.11.1.1.1|{value}"
        return await w.client.put("/fhir/Appointment", params={"identifier": identifier}, headers=h, json={
            "resourceType": "Appointment", "status": "cancelled",
            "identifier": [{"system": "urn:oid:1.1.111.1.11.1.1.1", "value": value}],
            "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": GP_A}},
                             "status": "accepted"}]})

    def slot_search(w: Dispatch) -> str:
        now = datetime.now(UTC)
        return (f"/fhir/Slot?start=ge{now.strftime('%Y-%m-%dT%H:%M:%S.000+00:00')}"
                f"&start=le{(now + timedelta(days=2)).strftime('%Y-%m-%dT%H:%M:%S.000+00:00')}"
                f"&schedule.actor:Practitioner.identifier={fm.IDNPS_SYSTEM}%7C{GP_A}&status=free")

    # An appointment is seen by whoever sees its care request, and by its professional.
    appointment_scoped = expect(*booker, out="404")
    # FHIR: the appointment's booker, its professional, or whoever manages their agenda.
    fhir_owned = expect("regulator", "secretary", "professional", out="404")
    # Slots are visible by level (SNP to regulators, PRO to professionals, CPTS to the GP's CPTS).
    slot_visible = expect("regulator", "secretary", "coordinator", "professional", out="ok",
                          secretary_out="404", coordinator_out="404")
    return {
        ("GET", "/healthz"): Rule(PUBLIC, get("/healthz")),
        ("GET", "/readyz"): Rule(PUBLIC, get("/readyz")),
        ("GET", "/readyz/traffic"): Rule(PUBLIC, get("/readyz/traffic")),
        ("POST", "/care-requests"): Rule(expect(*dispatcher), create_request),
        ("GET", "/care-requests/{request_id}"): Rule(request_scoped, with_request("GET")),
        ("GET", "/care-requests/{request_id}/candidates"): Rule(request_scoped, with_request("GET", "/candidates")),
        ("POST", "/care-requests/{request_id}/close"): Rule(request_scoped, with_request(
            "POST", "/close", {"orientation": "mmg", "reason": "no_slot_in_window"})),
        ("POST", "/slots"): Rule(expect(*manager), publish),
        ("GET", "/slots"): Rule(expect(*manager), get("/slots", params={"idnps": GP_A})),
        ("POST", "/slots/recurring"): Rule(expect(*manager), recurring),
        ("DELETE", "/slots/{slot_id}"): Rule(expect(*manager), on_slot("DELETE")),
        ("PUT", "/slots/{slot_id}/visibility"): Rule(expect(*manager), on_slot("PUT", "/visibility",
                                                                                {"visibility": ["SNP"]})),
        ("POST", "/slots/{slot_id}/hold"): Rule(request_scoped, hold),
        ("DELETE", "/slots/{slot_id}/hold/{hold_id}"): Rule(request_scoped, release),
        ("POST", "/appointments"): Rule(expect(*booker, out="404", professional_out="403"), book),
        ("POST", "/appointments/en-sus"): Rule(request_scoped, en_sus),
        ("GET", "/appointments/{appointment_id}"): Rule(appointment_scoped, on_appointment("GET", fresh=False)),
        ("POST", "/appointments/{appointment_id}/cancel"): Rule(appointment_scoped, on_appointment(
            "POST", "/cancel", {"reason": "patient"})),
        ("POST", "/appointments/{appointment_id}/outcome"): Rule(appointment_scoped, on_appointment(
            "POST", "/outcome", {"outcome": "fulfilled"})),
        ("GET", "/effecteurs"): Rule(expect(*booker, out="ok"), get("/effecteurs")),
        ("GET", "/effecteurs/{idnps}"): Rule(expect(*dispatcher, out="ok"), get(f"/effecteurs/{GP_A}")),
        ("GET", "/audit"): Rule(ADMIN_ONLY, get("/audit")),
        ("GET", "/fhir/Slot"): Rule(expect(*booker, out="ok"), get(slot_search)),
        ("POST", "/fhir/Slot"): Rule(expect(*manager), fhir_slot),
        ("GET", "/fhir/Slot/{id}"): Rule(slot_visible, get(lambda w: f"/fhir/Slot/{w.ids['slot']}")),
        ("GET", "/fhir/Schedule/{id}"): Rule(expect(*booker, out="ok"),
                                             get(lambda w: f"/fhir/Schedule/{w.ids['schedule']}")),
        ("POST", "/fhir/Schedule"): Rule(expect(*manager), fhir_schedule),
        # A GP may book a slot another professional opened to professionals (PRO): referral between GPs.
        ("POST", "/fhir/Appointment"): Rule(expect("regulator", "secretary", "professional", out="ok",
                                                   secretary_out="404"), fhir_book),
        ("PUT", "/fhir/Appointment"): Rule(fhir_owned, fhir_update),
        ("GET", "/fhir/Appointment/{id}"): Rule(fhir_owned, fhir_read),
    }


async def _dispatch_world(w: Dispatch) -> None:
    from cpts_snp_dispatch.repository import CptsView, ProfessionalView

    now = datetime.now(UTC)
    async with w.client.app.state.runtime.database.transaction() as session:
        for idnps, commune, lat, lon, cpts_id in ((GP_A, "69266", 45.766, 4.879, A),
                                                  (GP_B, "38185", 45.188, 5.724, B)):
            session.add(ProfessionalView(
                idnps=idnps, family_name="Morel" if idnps == GP_A else "Dupont", given_name="Dr",
                profession_code="10", specialty_code="SM54", commune_insee=commune, cpts_ids=[cpts_id],
                sas_participant=True, accepts_en_sus=True, en_sus_weekly_cap=1000, updated_at=now,
                sites=[{"site_id": f"S{idnps[-2:]}", "commune_insee": commune, "lat": lat, "lon": lon}]))
        session.add(CptsView(cpts_id=A, name="CPTS de l'Est lyonnais", communes=["69266", "69259"],
                             departements=["69"], updated_at=now))
        session.add(CptsView(cpts_id=B, name="CPTS du Grésivaudan", communes=["38185"], departements=["38"],
                             updated_at=now))
    w.ids["slot"] = await w.slot()
    w.ids["appointment"] = await w.appointment()
    from cpts_snp_dispatch import fhir_mapping as fm

    schedule = await w.ok("POST", "/fhir/Schedule", json={"resourceType": "Schedule", "actor": [
        {"identifier": {"system": fm.IDNPS_SYSTEM, "value": GP_A}}, {"reference": f"PractitionerRole/{GP_A}-S01"}]})
    w.ids["schedule"] = schedule["id"]


# --- patient-matching ---------------------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _name(n: int) -> str:
    return "Patient" + "".join(_LETTERS[int(d)] for d in str(n))


class Matching(World):
    def enrolment(self, n: int | None = None, **identity) -> dict:
        n = n or self.n()
        return {"identity": {"birth_name": _name(n), "first_names": "Rose",
                             "birth_date": (date(1940, 1, 1) + timedelta(days=n * 3)).isoformat(), "sex": "F",
                             "phone": "0612345678", **identity},
                "commune_insee": "69266", "consent": True}

    async def patient(self) -> str:
        return (await self.ok("POST", f"/cpts/{A}/patients", json=self.enrolment()))["patient"]["patient_id"]

    async def duplicate(self) -> str:
        n = self.n()
        first = self.enrolment(n)
        await self.ok("POST", f"/cpts/{A}/patients", json=first)
        second = self.enrolment(n, first_names="Rosa", phone="0699999999")
        second["identity"]["birth_name"] = first["identity"]["birth_name"] + "e"
        flagged = await self.ok("POST", f"/cpts/{A}/patients", json=second)
        return flagged["near_duplicates"][0]["candidate_id"]

    async def proposal(self) -> str:
        patient = await self.patient()
        await self.ok("POST", f"/cpts/{A}/rounds")
        proposals = await self.ok("GET", f"/cpts/{A}/proposals", params={"status": "pending", "limit": 500})
        return next(p["proposal_id"] for p in proposals["items"] if p["patient_id"] == patient)


def _matching_rules() -> dict[tuple[str, str], Rule]:
    guichet = ("secretary", "coordinator")
    listed = expect(*guichet)  # a list of a CPTS outside the caller's scope: 403
    record = expect(*guichet, out="404")  # a record outside it: 404
    addressed = expect("professional", "secretary", "coordinator", out="404")

    async def enrol(w: Matching, h, case) -> httpx.Response:
        return await w.client.post(f"/cpts/{A}/patients", headers=h, json=w.enrolment())

    def on_patient(method: str, suffix: str = "", body: dict | None = None, fresh: bool = False) -> Call:
        async def call(w: Matching, h, case) -> httpx.Response:
            patient = await w.patient() if fresh else w.ids["patient"]
            return await w.client.request(method, f"/cpts/{A}/patients/{patient}{suffix}", headers=h, json=body)
        return call

    async def resolve(w: Matching, h, case) -> httpx.Response:
        return await w.client.post(f"/cpts/{A}/duplicates/{await w.duplicate()}/resolve", headers=h,
                                   json={"decision": "keep_separate"})

    async def run_round(w: Matching, h, case) -> httpx.Response:
        return await w.client.post(f"/cpts/{A}/rounds", headers=h)

    async def patient_decline(w: Matching, h, case) -> httpx.Response:
        return await w.client.post(f"/cpts/{A}/proposals/{await w.proposal()}/patient-decline", headers=h,
                                   json={"reason": "too_far"})

    def gp_answer(suffix: str, body: dict | None) -> Call:
        async def call(w: Matching, h, case) -> httpx.Response:
            return await w.client.post(f"/proposals/{await w.proposal()}{suffix}", headers=h, json=body)
        return call

    return {
        ("GET", "/healthz"): Rule(PUBLIC, get("/healthz")),
        ("GET", "/readyz"): Rule(PUBLIC, get("/readyz")),
        ("GET", "/readyz/traffic"): Rule(PUBLIC, get("/readyz/traffic")),
        ("POST", "/cpts/{cpts_id}/patients"): Rule(listed, enrol),
        ("GET", "/cpts/{cpts_id}/patients"): Rule(listed, get(f"/cpts/{A}/patients")),
        ("GET", "/cpts/{cpts_id}/patients/{patient_id}"): Rule(record, on_patient("GET")),
        ("PATCH", "/cpts/{cpts_id}/patients/{patient_id}"): Rule(record, on_patient(
            "PATCH", body={"commune_insee": "69266"})),
        ("POST", "/cpts/{cpts_id}/patients/{patient_id}/withdraw"): Rule(record, on_patient(
            "POST", "/withdraw", {"reason": "moved_away"}, fresh=True)),
        ("POST", "/cpts/{cpts_id}/patients/{patient_id}/found-elsewhere"): Rule(record, on_patient(
            "POST", "/found-elsewhere", fresh=True)),
        ("GET", "/cpts/{cpts_id}/patients/{patient_id}/priority"): Rule(record, on_patient("GET", "/priority")),
        ("GET", "/cpts/{cpts_id}/priority/compare"): Rule(record, _compare),
        ("GET", "/cpts/{cpts_id}/duplicates"): Rule(listed, get(f"/cpts/{A}/duplicates")),
        ("POST", "/cpts/{cpts_id}/duplicates/{candidate_id}/resolve"): Rule(record, resolve),
        ("POST", "/cpts/{cpts_id}/rounds"): Rule(expect("coordinator"), run_round),
        ("GET", "/cpts/{cpts_id}/rounds"): Rule(expect("coordinator"), get(f"/cpts/{A}/rounds")),
        ("GET", "/cpts/{cpts_id}/rounds/{round_id}"): Rule(expect("coordinator"), get(
            lambda w: f"/cpts/{A}/rounds/{w.ids['round']}")),
        ("GET", "/cpts/{cpts_id}/proposals"): Rule(listed, get(f"/cpts/{A}/proposals")),
        ("POST", "/cpts/{cpts_id}/proposals/{proposal_id}/patient-decline"): Rule(record, patient_decline),
        # "My proposals": the GP's own (an empty page out of scope); an admin has no proposals of their own.
        ("GET", "/proposals"): Rule(expect("professional", out="ok", admin="403"), get("/proposals")),
        ("GET", "/proposals/{proposal_id}"): Rule(addressed, get(lambda w: f"/proposals/{w.ids['proposal']}")),
        ("POST", "/proposals/{proposal_id}/accept"): Rule(addressed, gp_answer("/accept", None)),
        ("POST", "/proposals/{proposal_id}/decline"): Rule(addressed, gp_answer("/decline",
                                                                                 {"reason": "no_capacity"})),
        ("GET", "/gps/{idnps}"): Rule(expect("coordinator"), get(f"/gps/{GP_A}")),
        ("GET", "/audit"): Rule(ADMIN_ONLY, get("/audit")),
    }


async def _compare(w: Matching, h, case) -> httpx.Response:
    return await w.client.get(f"/cpts/{A}/priority/compare", headers=h,
                              params={"a": w.ids["patient"], "b": w.ids["other_patient"]})


async def _matching_world(w: Matching) -> None:
    from cpts_patient_matching.repository import GpView

    now = datetime.now(UTC)
    async with w.client.app.state.runtime.database.transaction() as session:
        for idnps, commune, lat, lon, cpts_id in ((GP_A, "69266", 45.766, 4.879, A),
                                                  (GP_B, "38185", 45.188, 5.724, B)):
            session.add(GpView(idnps=idnps, family_name="Morel", given_name="Dr", commune_insee=commune,
                               cpts_ids=[cpts_id], active=True, accepting=True, new_patients_per_month=1000,
                               publics=["adults", "children"], lat=lat, lon=lon, updated_at=now))
    w.ids["patient"], w.ids["other_patient"] = await w.patient(), await w.patient()
    w.ids["proposal"] = await w.proposal()
    rounds = await w.ok("GET", f"/cpts/{A}/rounds")
    w.ids["round"] = rounds["items"][0]["round_id"]


# --- indicators ---------------------------------------------------------------------------------------------


def _indicators_rules(indicator_id: str) -> dict[tuple[str, str], Rule]:
    follower = expect("coordinator", "secretary", "ars")
    return {
        ("GET", "/healthz"): Rule(PUBLIC, get("/healthz")),
        ("GET", "/readyz"): Rule(PUBLIC, get("/readyz")),
        ("GET", "/readyz/traffic"): Rule(PUBLIC, get("/readyz/traffic")),
        ("GET", "/indicators/catalogue"): Rule(expect("coordinator", "secretary", "ars", out="ok"),
                                               get("/indicators/catalogue")),
        ("GET", "/indicators/cpts/{cpts_id}"): Rule(follower, get(f"/indicators/cpts/{A}")),
        ("GET", "/indicators/cpts/{cpts_id}/series/{indicator_id}"): Rule(
            follower, get(f"/indicators/cpts/{A}/series/{indicator_id}")),
        ("GET", "/indicators/cpts/{cpts_id}/export.csv"): Rule(follower, get(f"/indicators/cpts/{A}/export.csv")),
        ("GET", "/indicators/cpts/{cpts_id}/export.xlsx"): Rule(follower,
                                                                get(f"/indicators/cpts/{A}/export.xlsx")),
        ("POST", "/indicators/snapshots/rebuild"): Rule(ADMIN_ONLY, _rebuild),
        ("GET", "/indicators/cpts/{cpts_id}/professionals"): Rule(follower,
                                                                  get(f"/indicators/cpts/{A}/professionals")),
        ("GET", "/fhir/Measure"): Rule(expect("coordinator", "secretary", "ars", out="ok"), get("/fhir/Measure")),
        ("GET", "/fhir/MeasureReport"): Rule(follower, get("/fhir/MeasureReport", params={"subject": A})),
        # Steering questionnaire: the coordinator fills it in; the ARS reads only what was submitted.
        ("GET", "/indicators/questionnaire"): Rule(expect("coordinator", "secretary", "ars", out="ok"),
                                                   get("/indicators/questionnaire")),
        ("GET", "/indicators/cpts/{cpts_id}/questionnaires/{year}"): Rule(
            expect("coordinator", "secretary", "ars", ars_in="404"), get(f"/indicators/cpts/{A}/questionnaires/2026")),
        ("PUT", "/indicators/cpts/{cpts_id}/questionnaires/{year}"): Rule(expect("coordinator"), _send(
            "PUT", f"/indicators/cpts/{A}/questionnaires/2026", {"answers": {"q22": True}})),
        # Submitting an incomplete draft is refused (422) once the caller is let through.
        ("POST", "/indicators/cpts/{cpts_id}/questionnaires/{year}/submit"): Rule(
            expect("coordinator", coordinator_in="pass", admin="pass"),
            _send("POST", f"/indicators/cpts/{A}/questionnaires/2026/submit")),
        ("GET", "/indicators/questionnaires"): Rule(expect("ars", out="ok"),
                                                    get("/indicators/questionnaires", params={"year": 2026})),
        ("GET", "/indicators/cpts/{cpts_id}/questionnaires"): Rule(follower,
                                                                   get(f"/indicators/cpts/{A}/questionnaires")),
        # Annual targets and report.
        ("GET", "/indicators/cpts/{cpts_id}/targets/{year}"): Rule(follower, get(f"/indicators/cpts/{A}/targets/2026")),
        ("PUT", "/indicators/cpts/{cpts_id}/targets/{year}"): Rule(expect("coordinator"), _send(
            "PUT", f"/indicators/cpts/{A}/targets/2026", [{"indicator": "snp.appointments.booked", "target": 26}])),
        ("GET", "/indicators/cpts/{cpts_id}/report/{year}"): Rule(follower, get(
            f"/indicators/cpts/{A}/report/2026", params={"format": "json"})),
        # Custom indicators: the coordinator defines them; whoever follows the CPTS reads them.
        ("GET", "/indicators/custom-facts"): Rule(expect("coordinator", "secretary", "ars", out="ok"),
                                                  get("/indicators/custom-facts")),
        ("POST", "/indicators/cpts/{cpts_id}/custom"): Rule(expect("coordinator"), _new_custom),
        ("GET", "/indicators/cpts/{cpts_id}/custom"): Rule(follower, get(f"/indicators/cpts/{A}/custom")),
        ("GET", "/indicators/cpts/{cpts_id}/custom/{slug}"): Rule(follower, get(
            f"/indicators/cpts/{A}/custom/demandes_sas")),
        ("DELETE", "/indicators/cpts/{cpts_id}/custom/{slug}"): Rule(expect("coordinator"), _delete_custom),
        # The régional view: 69 and 38 are both in Auvergne-Rhône-Alpes (84).
        ("GET", "/indicators/regions/{region_code}"): Rule(expect("ars", out="ok"), get("/indicators/regions/84")),
    }


def _send(method: str, url: str, body: Any = None) -> Call:
    async def call(w: World, h, case) -> httpx.Response:
        return await w.client.request(method, url, headers=h, json=body)
    return call


def _custom(slug: str) -> dict[str, Any]:
    return {"id": slug, "label": "Demandes venues du SAS", "unit": "demandes", "direction": "up", "kind": "count",
            "numerator": {"fact": "care_request.received", "filters": {"origin": ["sas"]}}}


async def _new_custom(w: World, h, case) -> httpx.Response:
    return await w.client.post(f"/indicators/cpts/{A}/custom", headers=h, json=_custom(f"demandes_{w.n()}"))


async def _delete_custom(w: World, h, case) -> httpx.Response:
    slug = f"demandes_{w.n()}"
    await w.ok("POST", f"/indicators/cpts/{A}/custom", json=_custom(slug))
    return await w.client.delete(f"/indicators/cpts/{A}/custom/{slug}", headers=h)


async def _rebuild(w: World, h, case) -> httpx.Response:
    return await w.client.post("/indicators/snapshots/rebuild", headers=h, params={"cpts_id": A})


async def _indicators_world(w: World) -> str:
    from cpts_events import new_event
    from cpts_events.registry import CptsRegistered
    from cpts_indicators.consumers import record_facts

    async with w.client.app.state.runtime.database.transaction() as session:
        await record_facts(session, [
            new_event(CptsRegistered(cpts_id=A, name="CPTS de l'Est lyonnais", stage="aci_signed",
                                     communes=["69266", "69259"], population=200000, size_band=4,
                                     departements=["69"]), source="/cpts/registry"),
            new_event(CptsRegistered(cpts_id=B, name="CPTS du Grésivaudan", stage="aci_signed",
                                     communes=["38185"], population=160000, size_band=3, departements=["38"]),
                      source="/cpts/registry")])
    await w.ok("POST", f"/indicators/cpts/{A}/custom", json=_custom("demandes_sas"))
    catalogue = await w.ok("GET", "/indicators/catalogue")
    return catalogue["indicators"][0]["id"]


# --- The tests ----------------------------------------------------------------------------------------------


def _routes_of(definition: ServiceDefinition) -> set[tuple[str, str]]:
    app = create_app(definition, definition.settings_class(profile="test"))
    return {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
            for method in operations if method in ("get", "post", "put", "patch", "delete")}


def _services() -> dict[str, tuple[ServiceDefinition, set[tuple[str, str]]]]:
    from cpts_indicators.app import service as indicators
    from cpts_patient_matching.app import service as matching
    from cpts_registry.app import service as registry
    from cpts_snp_dispatch.app import service as dispatch

    return {"registry": (registry, set(_registry_rules())), "snp-dispatch": (dispatch, set(_dispatch_rules())),
            "patient-matching": (matching, set(_matching_rules())),
            "indicators": (indicators, set(_indicators_rules("x")))}


def test_every_route_has_an_expected_access():
    problems = []
    for name, (definition, covered) in _services().items():
        routes = _routes_of(definition)
        problems += [f"{name}: {m} {p} has no expected access in the matrix" for m, p in sorted(routes - covered)]
        problems += [f"{name}: {m} {p} is in the matrix but not in the app" for m, p in sorted(covered - routes)]
    assert not problems, "\n".join(problems)


def test_every_case_of_every_rule_is_expected():
    for rules in (_registry_rules(), _dispatch_rules(), _matching_rules(), _indicators_rules("x")):
        for key, rule in rules.items():
            assert set(rule.expected) == set(CASES), key
            assert set(rule.expected.values()) <= {"ok", "403", "404", "pass"}, key


@pytest.fixture
def start(database_url, kafka_broker, topic_prefix, tmp_path):
    def starting(definition: ServiceDefinition, **overrides):
        settings = settings_for(definition, database_url=database_url, kafka_broker=kafka_broker,
                                topic_prefix=topic_prefix, var_dir=tmp_path / "var", **overrides)
        return running_service(definition, settings)
    return starting


def _issuer(tmp_path) -> LocalIssuer:
    return LocalIssuer(tmp_path / "var" / "local-issuer")


async def test_registry_access_matrix(start, tmp_path):
    from cpts_registry.app import service

    async with start(service) as client:
        world = World(client, _issuer(tmp_path))
        await _registry_world(world)
        await run_matrix(world, _registry_rules())


async def test_snp_dispatch_access_matrix(start, tmp_path):
    from cpts_snp_dispatch.app import service

    async with start(service) as client:
        world = Dispatch(client, _issuer(tmp_path))
        await _dispatch_world(world)
        await run_matrix(world, _dispatch_rules())


async def test_patient_matching_access_matrix(start, tmp_path):
    from cpts_patient_matching.app import service

    async with start(service, scheduler_enabled=False) as client:
        world = Matching(client, _issuer(tmp_path))
        await _matching_world(world)
        await run_matrix(world, _matching_rules())


async def test_indicators_access_matrix(start, tmp_path):
    from cpts_indicators.app import service

    async with start(service) as client:
        world = World(client, _issuer(tmp_path))
        indicator_id = await _indicators_world(world)
        await run_matrix(world, _indicators_rules(indicator_id))
