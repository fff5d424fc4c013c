"""Every read and write of a care request or an appointment is in the audit trail (who, role, when, which
record, purpose, with the purpose the client declares); admins query it; the database refuses to change it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

PATIENT = {"family_name": "Lambert", "given_name": "Rose", "birth_date": "1950-03-02", "sex": "F"}


async def _request(d) -> str:
    response = await d.client.post("/care-requests", headers=d.regulator, json={
        "origin": "sas", "patient": PATIENT, "location": {"commune_insee": "69266"}, "reason_category": "fever",
        "urgency": "48h", "mt_none": True, "consent_mt_referral": True})
    assert response.status_code == 201, response.text
    return response.json()["request_id"]


async def _slot(d, hours: float = 3) -> str:
    response = await d.client.post("/slots", headers=d.professional("810100000001"), json={
        "idnps": "810100000001", "site_id": "S01", "slots": [{"start": d.at(hours), "end": d.at(hours + 0.25)}]})
    assert response.status_code == 201, response.text
    return response.json()[0]["slot_id"]


async def _lines(d, record_id: str) -> list[tuple[str, str, str, str, str]]:
    async with d.database.sessions() as session:
        rows = await session.execute(sa.text(
            "SELECT subject, roles, action, record_type, purpose FROM audit_log WHERE record_id = :r ORDER BY id"),
            {"r": record_id})
        return [tuple(r) for r in rows.all()]


async def test_appointments_are_audited_from_booking_to_outcome_with_the_declared_purpose(dispatch):
    d = dispatch
    request_id, slot_id = await _request(d), await _slot(d)
    booked = await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": request_id},
                                 headers=d.regulator)
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["appointment_id"]
    read = await d.client.get(f"/appointments/{appointment}", headers={**d.regulator, "X-Purpose": "regulation"})
    assert read.status_code == 200
    seen = await d.client.get(f"/appointments/{appointment}", headers=d.professional("810100000001"))
    assert seen.status_code == 200
    done = await d.client.post(f"/appointments/{appointment}/outcome", json={"outcome": "fulfilled"},
                               headers=d.professional("810100000001"))
    assert done.status_code == 200, done.text
    assert await _lines(d, appointment) == [
        ("regulator-user", "regulator", "create", "appointment", "booking"),
        ("regulator-user", "regulator", "read", "appointment", "follow-up [regulation]"),
        ("professional-user", "professional", "read", "appointment", "follow-up"),
        ("professional-user", "professional", "outcome", "appointment", "care: outcome"),
    ]
    assert ("regulator-user", "regulator", "read", "care_request", "book") in await _lines(d, request_id)

    hidden = await d.client.get(f"/appointments/{appointment}", headers=d.professional("810100000002"))
    assert hidden.status_code == 404
    assert len(await _lines(d, appointment)) == 4  # a refused read leaves no line: nothing was served


async def test_an_unknown_declared_purpose_is_a_422_naming_the_header(dispatch):
    d = dispatch
    request_id = await _request(d)
    response = await d.client.get(f"/care-requests/{request_id}", headers={**d.regulator, "X-Purpose": "curious"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "X-Purpose"
    assert [line[2] for line in await _lines(d, request_id)] == ["create"]


async def test_fhir_appointments_are_audited(dispatch):
    from cpts_snp_dispatch import fhir_mapping as fm

    d = dispatch
    slot_id = await _slot(d, 5)
    body = {"resourceType": "Appointment", "meta": {"profile": [fm.APPOINTMENT_PROFILE]},
            "identifier": [{"system": "urn:oid:1.1.111.1.11.1.1.1", "value": "rdv-audit"}], "status": "booked",
            "slot": [{"reference": f"Slot/{slot_id}"}],
            "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": "810100000001"}},
                             "status": "accepted"}]}
    created = await d.client.post("/fhir/Appointment", json=body, headers=d.regulator)
    assert created.status_code == 201, created.text
    appointment = created.json()["id"]
    assert (await d.client.get(f"/fhir/Appointment/{appointment}", headers=d.regulator)).status_code == 200
    assert [(a, p) for _, _, a, _, p in await _lines(d, appointment)] == [("create", "booking"),
                                                                        ("read", "follow-up")]


async def test_admins_query_the_trail_and_nobody_rewrites_it(dispatch):
    d = dispatch
    request_id = await _request(d)
    await d.client.get(f"/care-requests/{request_id}", headers=d.regulator)
    assert (await d.client.get("/audit", headers=d.regulator)).status_code == 403
    page = await d.client.get("/audit", params={"record_type": "care_request", "record_id": request_id},
                              headers=d.headers("admin"))
    assert page.status_code == 200, page.text
    assert [(i["action"], i["purpose"], i["roles"]) for i in page.json()["items"]] == [
        ("create", "intake", ["regulator"]), ("read", "follow-up", ["regulator"])]
    review = (await d.client.get("/audit", params={"record_type": "audit_log"}, headers=d.headers("admin"))).json()
    assert review["items"][0]["record_id"] == f"care_request/{request_id}"
    for statement in ("UPDATE audit_log SET subject = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with d.database.transaction() as session:
                await session.execute(sa.text(statement))


async def test_a_command_and_its_audit_line_commit_together_and_it_is_answered_from_its_transaction(dispatch):
    """The database going away just after a command's commit: the change is stored, so it is answered 201/200
    with its record, and its audit line was committed with it (an audit written afterwards, in a transaction
    of its own, would fail: a 503 for a stored change, whose retry is refused, and a hole in the trail)."""
    from cpts_snp_dispatch import fhir_mapping as fm

    d = dispatch
    post, away = d.client.post, d.away_after_commit
    intake = {"origin": "sas", "patient": PATIENT, "location": {"commune_insee": "69266"},
              "reason_category": "fever", "urgency": "48h", "mt_none": True, "consent_mt_referral": True}
    created = await away(post("/care-requests", headers=d.regulator, json=intake))
    assert created.status_code == 201, created.text
    request_id = created.json()["request_id"]
    assert created.json()["status"] == "open" and created.json()["patient"]["family_name"] == "Lambert"

    slot_id = await _slot(d)
    booked = await away(post("/appointments", json={"slot_id": slot_id, "request_id": request_id},
                             headers=d.regulator))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["appointment_id"]
    assert (booked.json()["slot_id"], booked.json()["status"]) == (slot_id, "booked")
    seen = await away(post(f"/appointments/{appointment}/outcome", json={"outcome": "fulfilled"},
                           headers=d.professional("810100000001")))
    assert seen.status_code == 200 and seen.json()["status"] == "fulfilled", seen.text

    other_slot = await _slot(d, 5)
    again = await _request(d)
    rebooked = await post("/appointments", json={"slot_id": other_slot, "request_id": again}, headers=d.regulator)
    assert rebooked.status_code == 201, rebooked.text
    cancelled = await away(post(f"/appointments/{rebooked.json()['appointment_id']}/cancel",
                                json={"reason": "patient"}, headers=d.regulator))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    en_sus = await away(post("/appointments/en-sus", json={"request_id": again, "idnps": "810100000001"},
                             headers=d.regulator))
    assert en_sus.status_code == 201 and en_sus.json()["kind"] == "en_sus", en_sus.text

    to_close = await _request(d)
    closed = await away(post(f"/care-requests/{to_close}/close", json={"orientation": "mmg",
                                                                       "reason": "no_slot_in_window"},
                             headers=d.regulator))
    assert closed.status_code == 200 and closed.json()["status"] == "closed_without_slot", closed.text

    body = {"resourceType": "Appointment", "meta": {"profile": [fm.APPOINTMENT_PROFILE]},
            "identifier": [{"system": "urn:oid:1.1.111.1.11.1.1.1", "value": "rdv-away"}], "status": "booked",
            "slot": [{"reference": f"Slot/{await _slot(d, 7)}"}],
            "participant": [{"actor": {"identifier": {"system": fm.IDNPS_SYSTEM, "value": "810100000001"}},
                             "status": "accepted"}]}
    fhir_created = await away(post("/fhir/Appointment", json=body, headers=d.regulator))
    assert fhir_created.status_code == 201, fhir_created.text
    fhir_id = fhir_created.json()["id"]
    fhir_cancelled = await away(d.client.put("/fhir/Appointment?identifier=urn:oid:1.1.111.1.11.1.1.1|rdv-away",
                                             json={**body, "status": "cancelled"}, headers=d.regulator))
    assert fhir_cancelled.status_code == 200 and fhir_cancelled.json()["status"] == "cancelled", fhir_cancelled.text

    async def actions(record_id: str) -> list[tuple[str, str]]:
        return [(action, purpose) for _, _, action, _, purpose in await _lines(d, record_id)]

    assert await actions(request_id) == [("create", "intake"), ("read", "book")]
    assert await actions(appointment) == [("create", "booking"), ("outcome", "care: outcome")]
    assert await actions(rebooked.json()["appointment_id"]) == [("create", "booking"),
                                                                ("cancel", "booking: cancellation")]
    assert await actions(en_sus.json()["appointment_id"]) == [("create", "booking en sus")]
    assert (await actions(to_close))[-2:] == [("read", "close without slot"), ("close", "close without slot")]
    assert await actions(fhir_id) == [("create", "booking"), ("update", "booking: cancelled")]
