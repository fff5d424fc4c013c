"""The journey of a regulator and a CPTS secretary: publish slots, take a request, search, hold, book, follow up."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import sqlalchemy as sa

PATIENT = {"family_name": "Lambert", "given_name": "Rose", "birth_date": "1950-03-02", "sex": "F",
           "phone": "0612345678"}


def request_body(**changes) -> dict:
    body = {"origin": "sas", "patient": dict(PATIENT), "location": {"commune_insee": "69266"},
            "reason_category": "fever", "urgency": "48h", "mt_none": True, "consent_mt_referral": True}
    body.update(changes)
    return body


async def publish(d, idnps: str, starts: list[float], *, minutes: int = 15, **extra):
    slots = [{"start": d.at(h), "end": d.at(h + minutes / 60), **extra} for h in starts]
    response = await d.client.post("/slots", json={"idnps": idnps, "site_id": f"S{idnps[-2:]}", "slots": slots},
                                   headers=d.professional(idnps))
    assert response.status_code == 201, response.text
    return response.json()


async def new_request(d, headers=None, **changes) -> str:
    response = await d.client.post("/care-requests", json=request_body(**changes), headers=headers or d.regulator)
    assert response.status_code == 201, response.text
    return response.json()["request_id"]


async def test_slots_are_published_one_by_one_or_recurring_and_overlaps_or_past_slots_are_refused(dispatch):
    d = dispatch
    published = await publish(d, "810100000001", [2, 3])
    assert [s["status"] for s in published] == ["free", "free"]
    assert published[0]["visibility"] == ["PRO", "SNP"]

    overlap = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "S01", "slots": [
        {"start": d.at(2.1), "end": d.at(2.4)}]}, headers=d.professional("810100000001"))
    assert overlap.status_code == 409
    assert overlap.json()["errors"][0]["field"] == "slots[0].start"
    assert published[0]["slot_id"] in overlap.json()["detail"]

    past = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "S01", "slots": [
        {"start": d.at(-2), "end": d.at(-1.5)}]}, headers=d.professional("810100000001"))
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "slots[0].start"
    backwards = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "S01", "slots": [
        {"start": d.at(30), "end": d.at(29)}]}, headers=d.professional("810100000001"))
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "slots[0].end"
    naive = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "S01", "slots": [
        {"start": "2030-01-01T10:00:00", "end": "2030-01-01T10:15:00"}]}, headers=d.professional("810100000001"))
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "slots.0.start"
    other_site = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "NOPE", "slots": [
        {"start": d.at(40), "end": d.at(40.25)}]}, headers=d.professional("810100000001"))
    assert other_site.status_code == 422 and other_site.json()["errors"][0]["field"] == "slots[0].site_id"
    someone_else = await d.client.post("/slots", json={"idnps": "810100000001", "site_id": "S01", "slots": [
        {"start": d.at(50), "end": d.at(50.25)}]}, headers=d.professional("810100000002"))
    assert someone_else.status_code == 403

    first_day = (date.today() + timedelta(days=7)).isoformat()
    recurring = await d.client.post("/slots/recurring", json={
        "idnps": "810100000002", "site_id": "S02", "weekdays": [2], "start_time": "14:00", "end_time": "16:00",
        "slot_minutes": 15, "first_day": first_day, "weeks": 6}, headers=d.secretary)
    assert recurring.status_code == 201, recurring.text
    assert recurring.json()["total"] == 6 * 8
    starts = [s["start"] for s in recurring.json()["items"]]
    assert starts == sorted(starts)
    again = await d.client.post("/slots/recurring", json={
        "idnps": "810100000002", "site_id": "S02", "weekdays": [2], "start_time": "15:00", "end_time": "15:30",
        "slot_minutes": 15, "first_day": first_day, "weeks": 1}, headers=d.secretary)
    assert again.status_code == 409
    outsider = await d.client.post("/slots/recurring", json={
        "idnps": "810100000004", "site_id": "S04", "weekdays": [3], "start_time": "09:00", "end_time": "10:00",
        "slot_minutes": 15, "first_day": first_day, "weeks": 1}, headers=d.secretary)
    assert outsider.status_code == 403  # Dupont is a member of another CPTS
    assert len(await d.events("slot.published")) == 2 + 48


async def test_intake_refuses_a_bad_nir_key_a_future_birth_date_and_an_unknown_commune(dispatch):
    d = dispatch
    good_nir = "2500369266012" + f"{97 - int('2500369266012') % 97:02d}"
    ok = await d.client.post("/care-requests", json=request_body(
        patient={**PATIENT, "ins_nir": good_nir}), headers=d.regulator)
    assert ok.status_code == 201, ok.text
    bad_key = await d.client.post("/care-requests", json=request_body(
        patient={**PATIENT, "ins_nir": good_nir[:13] + "00"}), headers=d.regulator)
    assert bad_key.status_code == 422 and bad_key.json()["errors"][0]["field"] == "patient.ins_nir"
    assert good_nir not in bad_key.text
    corsica = "1850"  # 2A is read as 19 in the key
    body = f"{corsica}22A004123"
    key = f"{97 - int(body.replace('2A', '19')) % 97:02d}"
    ok_corsica = await d.client.post("/care-requests", json=request_body(
        patient={**PATIENT, "ins_nir": body + key}), headers=d.regulator)
    assert ok_corsica.status_code == 201, ok_corsica.text
    future = await d.client.post("/care-requests", json=request_body(
        patient={**PATIENT, "birth_date": (date.today() + timedelta(days=3)).isoformat()}), headers=d.regulator)
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "patient.birth_date"
    unknown = await d.client.post("/care-requests", json=request_body(location={"commune_insee": "69999"}),
                                  headers=d.regulator)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "location.commune_insee"
    ambiguous = await d.client.post("/care-requests", json=request_body(location={"postcode": "69330"}),
                                    headers=d.regulator)
    assert ambiguous.status_code == 422 and "several communes" in ambiguous.json()["detail"]
    by_postcode = await d.client.post("/care-requests", json=request_body(location={"postcode": "69100"}),
                                      headers=d.regulator)
    assert by_postcode.status_code == 201 and by_postcode.json()["commune_insee"] == "69266"
    outside = await d.client.post("/care-requests", json=request_body(location={"commune_insee": "75056"}),
                                  headers=d.regulator)
    assert outside.status_code == 403
    secretary_as_sas = await d.client.post("/care-requests", json=request_body(), headers=d.secretary)
    assert secretary_as_sas.status_code == 403
    secretary = await d.client.post("/care-requests", json=request_body(origin="cpts_phone"), headers=d.secretary)
    assert secretary.status_code == 201 and secretary.json()["cpts_id"] == d.cpts
    received = await d.events("care_request.received")
    assert len(received) == 4


async def test_search_follows_the_sas_order_window_radius_and_visibility(dispatch):
    d = dispatch
    await publish(d, "810100000001", [1, 26])                      # participant, Villeurbanne
    await publish(d, "810100000003", [3])                          # non-participant, Bron
    await publish(d, "810100000004", [2], visibility=["CPTS"])     # other CPTS only
    await publish(d, "810100000005", [4], visibility=["PUBLIC"])   # participant, Décines
    await publish(d, "810100000006", [24 * 5])                     # outside the window
    request_id = await new_request(d, mt_none=False, consent_mt_referral=False, mt_idnps="810100000002",
                                   location={"address": "1 place Lazare Goujon", "commune_insee": "69266",
                                             "lat": 45.7665, "lon": 4.8795})
    response = await d.client.get(f"/care-requests/{request_id}/candidates", headers=d.regulator)
    assert response.status_code == 200, response.text
    result = response.json()
    groups = [(c["idnps"], c["group"]) for c in result["cards"]]
    assert groups[0] == ("810100000002", "own_doctor")
    assert [g for _, g in groups[:4]] == ["own_doctor", "participant_with_slots", "participant_with_slots",
                                          "non_participant_with_slots"]
    assert groups[1][0] == "810100000001"  # the nearest participant first (address: by distance)
    assert "810100000004" not in [i for i, _ in groups[:4]]  # its CPTS-only slot is not for the SAS
    arnaud = result["cards"][1]
    assert arnaud["free_slot_count"] == 2 and arnaud["distance_km"] < 0.5
    assert sum(len(v) for v in arnaud["slots"].values()) == 2
    assert result["order"] == "distance" and result["professionals_with_slots"] == 3
    faure = next(c for c in result["cards"] if c["idnps"] == "810100000006")
    assert faure["group"] == "others" and faure["free_slot_count"] == 0

    # A CPTS secretary sees the PUBLIC slots and the CPTS slots of their own CPTS's members only.
    await publish(d, "810100000003", [5], visibility=["CPTS"])
    secretary_request = await new_request(d, headers=d.secretary, origin="cpts_phone")
    seen = (await d.client.get(f"/care-requests/{secretary_request}/candidates", headers=d.secretary)).json()
    with_slots = {c["idnps"]: c["free_slot_count"] for c in seen["cards"] if c["free_slot_count"]}
    assert with_slots == {"810100000003": 1, "810100000005": 1}
    assert seen["order"] == "neutral"
    again = (await d.client.get(f"/care-requests/{secretary_request}/candidates", headers=d.secretary)).json()
    assert [c["idnps"] for c in again["cards"]] == [c["idnps"] for c in seen["cards"]]

    # Another SAS cannot read the request at all.
    elsewhere = d.headers("regulator", departements=["38"])
    assert (await d.client.get(f"/care-requests/{request_id}/candidates", headers=elsewhere)).status_code == 404


async def test_radius_is_enlarged_until_enough_professionals_have_slots(dispatch):
    d = dispatch
    await publish(d, "810100000005", [2])  # Décines, ~12 km from Lyon 9e
    request_id = await new_request(d, location={"commune_insee": "69389"})  # Lyon 9e arrondissement
    result = (await d.client.get(f"/care-requests/{request_id}/candidates", headers=d.regulator)).json()
    # Rhône: default radius then enlarged step by step up to the maximum: fewer than 5 with slots here.
    assert result["radius_km"] == 50
    assert result["professionals_with_slots"] == 1


async def test_hold_then_book_and_nobody_else_can_take_a_held_or_booked_slot(dispatch):
    d = dispatch
    slot_id = (await publish(d, "810100000001", [3]))[0]["slot_id"]
    mine, theirs = await new_request(d), await new_request(d)
    held = await d.client.post(f"/slots/{slot_id}/hold", json={"request_id": mine}, headers=d.regulator)
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    stolen = await d.client.post(f"/slots/{slot_id}/hold", json={"request_id": theirs}, headers=d.regulator)
    assert stolen.status_code == 409 and "held by someone else" in stolen.json()["detail"]
    direct = await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": theirs}, headers=d.regulator)
    assert direct.status_code == 409
    search = (await d.client.get(f"/care-requests/{theirs}/candidates", headers=d.regulator)).json()
    assert all(c["free_slot_count"] == 0 for c in search["cards"] if c["idnps"] == "810100000001")
    booked = await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": mine, "hold_id": hold_id},
                                 headers=d.regulator)
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked" and booked.json()["kind"] == "slot"
    twice = await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": theirs}, headers=d.regulator)
    assert twice.status_code == 409 and twice.json()["errors"][0]["field"] == "slot_id"
    types = await d.events()
    assert "fr.cpts.snp.slot.held.v1" in types and "fr.cpts.snp.appointment.booked.v1" in types


async def test_concurrent_bookings_of_one_slot_give_exactly_one_appointment(dispatch):
    d = dispatch
    slot_id = (await publish(d, "810100000001", [5]))[0]["slot_id"]
    requests = [await new_request(d) for _ in range(12)]
    answers = await asyncio.gather(*[
        d.client.post("/appointments", json={"slot_id": slot_id, "request_id": r}, headers=d.regulator)
        for r in requests])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 11, [a.text for a in answers if a.status_code not in (201, 409)]
    async with d.database.sessions() as session:
        live = (await session.execute(sa.text(
            "SELECT count(*) FROM appointment WHERE slot_id = :s AND status = 'booked'"), {"s": slot_id})).scalar()
    assert live == 1


async def test_cancel_frees_the_slot_and_a_fulfilled_visit_without_mt_is_announced_to_patient_matching(dispatch):
    d = dispatch
    slot_id = (await publish(d, "810100000001", [6]))[0]["slot_id"]
    request_id = await new_request(d)
    appointment = (await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": request_id},
                                       headers=d.regulator)).json()
    cancelled = await d.client.post(f"/appointments/{appointment['appointment_id']}/cancel",
                                    json={"reason": "patient"}, headers=d.regulator)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    rebooked = await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": request_id},
                                   headers=d.regulator)
    assert rebooked.status_code == 201, rebooked.text
    appointment_id = rebooked.json()["appointment_id"]
    gp = d.professional("810100000001")
    seen = await d.client.post(f"/appointments/{appointment_id}/outcome", json={"outcome": "fulfilled"}, headers=gp)
    assert seen.status_code == 200 and seen.json()["status"] == "fulfilled"
    not_his = await d.client.post(f"/appointments/{appointment_id}/outcome", json={"outcome": "noshow"},
                                  headers=d.professional("810100000002"))
    assert not_his.status_code == 404
    cancel_after = await d.client.post(f"/appointments/{appointment_id}/cancel", json={}, headers=d.regulator)
    assert cancel_after.status_code == 409
    types = await d.events()
    assert types.count("fr.cpts.snp.appointment.booked.v1") == 2
    assert "fr.cpts.snp.appointment.cancelled.v1" in types
    assert types[-2:] == ["fr.cpts.snp.appointment.fulfilled.v1", "fr.cpts.snp.patient_without_mt.seen.v1"]


async def test_withdrawing_a_booked_slot_cancels_its_appointment_with_an_event(dispatch):
    d = dispatch
    slot_id = (await publish(d, "810100000001", [7]))[0]["slot_id"]
    request_id = await new_request(d)
    appointment = (await d.client.post("/appointments", json={"slot_id": slot_id, "request_id": request_id},
                                       headers=d.regulator)).json()
    withdrawn = await d.client.delete(f"/slots/{slot_id}", headers=d.professional("810100000001"))
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    after = await d.client.get(f"/appointments/{appointment['appointment_id']}", headers=d.regulator)
    assert after.json()["status"] == "cancelled" and after.json()["cancel_reason"] == "slot_withdrawn"
    request = await d.client.get(f"/care-requests/{request_id}", headers=d.regulator)
    assert request.json()["status"] == "open"
    assert (await d.events())[-2:] == ["fr.cpts.snp.appointment.cancelled.v1", "fr.cpts.snp.slot.withdrawn.v1"]
    async with d.database.sessions() as session:
        lines = (await session.execute(sa.text(
            "SELECT action, purpose, subject FROM audit_log WHERE record_id = :r ORDER BY id"),
            {"r": appointment["appointment_id"]})).all()
    # The professional's withdrawal cancelled the appointment: a write on it, in its audit trail.
    assert ("cancel", "slot withdrawn", "professional-user") in [tuple(line) for line in lines]


async def test_en_sus_when_nothing_is_free_counts_against_the_weekly_cap(dispatch):
    d = dispatch
    request_id = await new_request(d)
    result = (await d.client.get(f"/care-requests/{request_id}/candidates", headers=d.regulator)).json()
    assert result["professionals_with_slots"] == 0
    offered = {e["idnps"]: e["remaining_this_week"] for e in result["en_sus"]}
    assert offered == {"810100000001": 2, "810100000005": None}
    for expected in (201, 201, 409):
        response = await d.client.post("/appointments/en-sus", json={"request_id": request_id,
                                                                     "idnps": "810100000001"}, headers=d.regulator)
        assert response.status_code == expected, response.text
        if expected == 201:
            assert response.json()["kind"] == "en_sus" and response.json()["slot_id"] is None
            request_id = await new_request(d)
    assert "weekly cap" in response.json()["detail"]
    refused = await d.client.post("/appointments/en-sus", json={"request_id": request_id, "idnps": "810100000002"},
                                  headers=d.regulator)
    assert refused.status_code == 409


async def test_a_request_with_no_slot_is_closed_with_an_orientation_and_reads_are_audited(dispatch):
    d = dispatch
    request_id = await new_request(d)
    closed = await d.client.post(f"/care-requests/{request_id}/close", json={
        "orientation": "mmg", "reason": "no_slot_in_window"}, headers=d.regulator)
    assert closed.status_code == 200 and closed.json()["status"] == "closed_without_slot"
    again = await d.client.post(f"/care-requests/{request_id}/close", json={
        "orientation": "pdsa", "reason": "other"}, headers=d.regulator)
    assert again.status_code == 409
    bad = await d.client.post(f"/care-requests/{request_id}/close", json={"orientation": "moon", "reason": "other"},
                              headers=d.regulator)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "orientation"
    await d.client.get(f"/care-requests/{request_id}", headers=d.regulator, params={"purpose": "care"})
    # Free text could name the patient: refused, naming the parameter, and nothing read nor traced.
    free = await d.client.get(f"/care-requests/{request_id}", headers=d.regulator,
                              params={"purpose": "rappel de Mme Martin"})
    assert free.status_code == 422 and free.json()["errors"][0]["field"] == "purpose"
    async with d.database.sessions() as session:
        lines = (await session.execute(sa.text(
            "SELECT action, purpose, subject FROM audit_log WHERE record_id = :r ORDER BY id"),
            {"r": request_id})).all()
    assert [(a, p) for a, p, _ in lines] == [("create", "intake"), ("read", "close without slot"),
                                             ("close", "close without slot"), ("read", "close without slot"),
                                             ("read", "care")]
    assert all(s == "regulator-user" for _, _, s in lines)
    assert "fr.cpts.snp.care_request.closed_without_slot.v1" in await d.events()
