"""The CPTS's guichet: enrolment with consent, one person one record (INS, traits, review of near duplicates),
clear errors, priority order and its explanation, lifecycle events, audit of every read, and who sees what."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from cpts_patient_matching import handlers


async def test_enrolment_records_the_facts_and_announces_the_patient_without_identity(matching):
    m = matching
    body = m.body(identity={"ins_nir": m.nir()}, mobility={"max_distance_km": 5, "needs_home_visit": True},
                        priority={"ald": True, "c2s": True})
    created = await m.enrol(body)
    assert created["outcome"] == "created" and created["near_duplicates"] == []
    patient = created["patient"]
    assert patient["status"] == "waiting" and patient["cpts_id"] == m.cpts
    assert patient["commune_name"] == "Villeurbanne" and patient["consent_source"] == "guichet"
    assert patient["mobility"] == {"max_distance_km": 5.0, "needs_home_visit": True}
    assert patient["priority"]["group"] == "ald" and patient["priority"]["facts"] == ["ald", "70+", "c2s"]
    assert patient["priority"]["explanation"].startswith("ALD, C2S, 76 ans") or \
        patient["priority"]["explanation"].startswith("ALD, C2S, 75 ans")
    [(kind, payload)] = await m.events("patient.enrolled")
    assert payload["patient_id"] == patient["patient_id"] and payload["priority_group"] == "ald"
    assert payload["age_band"] == "70+" and payload["source"] == "guichet"
    raw = str(await m.events())
    assert not any(value in raw for value in ("Lambert", "Rose", "0612345678", m.nir(), "1950-03-02"))
    assert [a[1] for a in await m.audit(patient["patient_id"])] == ["create"]


async def test_one_person_one_record_by_ins_then_by_traits(matching):
    m = matching
    first = (await m.enrol(m.body(identity={"ins_nir": m.nir()})))["patient"]
    # The same INS with another spelling: the same record, completed, never a second one.
    again = await m.enrol(m.body(identity={"ins_nir": m.nir(), "birth_name": "LAMBERT-X", "phone": None},
                                       priority={"c2s": True}), expect=200)
    assert again["outcome"] == "existing" and again["patient"]["patient_id"] == first["patient_id"]
    assert again["patient"]["priority_facts"]["c2s"] is True
    # Without INS, the traits (case and accents aside) find the same person; her used name too.
    by_traits = await m.enrol(m.body(identity={"birth_name": "lambert", "first_names": "ROSE Marie"}),
                              expect=200)
    assert by_traits["patient"]["patient_id"] == first["patient_id"]
    married = await m.enrol(m.body(identity={"birth_name": "Martin", "used_name": "Dupont",
                                                   "first_names": "Anne", "birth_date": "1985-06-01"}))
    by_used_name = await m.enrol(m.body(identity={"birth_name": "Dupont", "first_names": "Anne",
                                                        "birth_date": "1985-06-01"}), expect=200)
    assert by_used_name["patient"]["patient_id"] == married["patient"]["patient_id"]
    listed = await m.client.get(f"/cpts/{m.cpts}/patients", headers=m.secretary)
    assert listed.json()["total"] == 2
    kinds = [k.rsplit(".", 2)[-2] for k, _ in await m.events()]
    assert kinds.count("enrolled") == 2 and "updated" in kinds
    assert "changed" in kinds  # priority changed (C2S)


async def test_near_duplicates_are_listed_for_review_and_merged_or_kept_apart(matching):
    m = matching
    rose = (await m.enrol(priority={"ald": True}))["patient"]
    typo = await m.enrol(m.body(identity={"birth_name": "Lambret", "phone": "0699999999"}))
    assert typo["outcome"] == "created"
    [flag] = typo["near_duplicates"]
    assert flag["other_patient_id"] == rose["patient_id"] and "proche" in flag["reason"]
    swapped = await m.enrol(m.body(identity={"birth_name": "Rose", "first_names": "Lambert"}))
    assert swapped["near_duplicates"][0]["reason"] == "nom et prénom inversés"

    third = await m.enrol(m.body(identity={"birth_name": "Lambrt"}))
    assert len(third["near_duplicates"]) == 2  # close to Lambert and to Lambret

    review = await m.client.get(f"/cpts/{m.cpts}/duplicates", headers=m.secretary)
    assert review.status_code == 200 and review.json()["total"] == 4
    pairs = {(d["a"]["patient_id"], d["b"]["patient_id"]): d for d in review.json()["items"]}
    merge_id = pairs[rose["patient_id"], typo["patient"]["patient_id"]]["candidate_id"]
    keep_apart_id = pairs[rose["patient_id"], swapped["patient"]["patient_id"]]["candidate_id"]

    apart = await m.client.post(f"/cpts/{m.cpts}/duplicates/{keep_apart_id}/resolve",
                                json={"decision": "keep_separate"}, headers=m.secretary)
    assert apart.status_code == 200 and apart.json()["status"] == "kept_separate"
    merged = await m.client.post(f"/cpts/{m.cpts}/duplicates/{merge_id}/resolve", json={"decision": "merge"},
                                 headers=m.secretary)
    assert merged.status_code == 200, merged.text
    kept = merged.json()["kept"]
    assert kept["patient_id"] == rose["patient_id"] and kept["identity"]["phone"] == "0612345678"
    assert kept["enrolled_at"] == rose["enrolled_at"]  # the earliest enrolment: the waiting time is hers
    absorbed = await m.client.get(f"/cpts/{m.cpts}/patients/{typo['patient']['patient_id']}",
                                  headers=m.secretary)
    assert absorbed.json()["status"] == "merged" and absorbed.json()["merged_into"] == rose["patient_id"]
    again = await m.client.post(f"/cpts/{m.cpts}/duplicates/{merge_id}/resolve", json={"decision": "merge"},
                                headers=m.secretary)
    assert again.status_code == 409
    left = (await m.client.get(f"/cpts/{m.cpts}/duplicates", headers=m.secretary)).json()
    assert [(d["a"]["patient_id"], d["b"]["patient_id"]) for d in left["items"]] == [
        (rose["patient_id"], third["patient"]["patient_id"])]  # the pair with the absorbed record is obsolete
    withdrawn = [p for _, p in await m.events("patient.withdrawn")]
    assert withdrawn[0]["reason"] == "merged_duplicate" and withdrawn[0]["merged_into"] == rose["patient_id"]
    assert "merge" in [a[1] for a in await m.audit(rose["patient_id"])]


async def test_bad_input_is_a_422_naming_the_field_never_a_500(matching):
    m = matching

    async def field_of(body: dict) -> str:
        response = await m.client.post(f"/cpts/{m.cpts}/patients", json=body, headers=m.secretary)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return response.json()["errors"][0]["field"]

    good = m.nir()
    assert await field_of(m.body(identity={"ins_nir": good[:13] + "00"})) == "identity.ins_nir"
    future = (date.today() + timedelta(days=2)).isoformat()
    assert await field_of(m.body(identity={"birth_date": future})) == "identity.birth_date"
    assert await field_of(m.body(commune_insee="69999")) == "commune_insee"
    assert await field_of(m.body(commune_insee="abc")) == "commune_insee"
    assert await field_of(m.body(consent=False)) == "consent"
    assert await field_of(m.body(priority={"complex": True})) == "priority.complex_assessed_on"
    assert await field_of(m.body(identity={"birth_name": "--"})) == "identity.birth_name"
    assert await field_of(m.body(identity={"sex": "X"})) == "identity.sex"
    assert await field_of({**m.body(), "unknown": 1}) == "unknown"
    response = await m.client.post(f"/cpts/{m.cpts}/patients",
                                   json=m.body(identity={"ins_nir": good[:13] + "00"}), headers=m.secretary)
    assert good[:13] not in response.text
    bad_cpts = await m.client.post("/cpts/ABC/patients", json=m.body(), headers=m.secretary)
    assert bad_cpts.status_code == 422
    assert await m.events() == []


async def test_the_list_is_in_priority_order_and_compare_says_why(matching):
    m = matching
    plain = (await m.enrol(m.body(identity={"birth_name": "Petit", "first_names": "Paul",
                                                  "birth_date": "1990-01-01", "sex": "M"})))["patient"]
    ald = (await m.enrol(m.body(identity={"birth_name": "Grand", "first_names": "Jeanne",
                                          "birth_date": "1988-01-01"}, priority={"ald": True})))["patient"]
    senior = (await m.enrol())["patient"]
    page = (await m.client.get(f"/cpts/{m.cpts}/patients", headers=m.secretary)).json()
    assert [p["patient_id"] for p in page["items"]] == [ald["patient_id"], senior["patient_id"],
                                                        plain["patient_id"]]
    assert [p["rank"] for p in page["items"]] == [1, 2, 3]
    why = await m.client.get(f"/cpts/{m.cpts}/priority/compare", params={"a": plain["patient_id"],
                                                                       "b": ald["patient_id"]},
                             headers=m.coordinator)
    assert why.status_code == 200
    result = why.json()
    assert result["first"] == ald["patient_id"] and result["score_difference"] == 400
    assert result["explanation"].startswith("B passe avant A : 500 points contre 100")
    assert "ALD : +400 pour B" in result["explanation"]
    one = await m.client.get(f"/cpts/{m.cpts}/patients/{ald['patient_id']}/priority", headers=m.secretary)
    assert one.json()["explanation"].startswith("ALD, 38 ans") and one.json()["score"] == 500
    assert ("secretary-user", "read", "list of patients") in await m.audit(plain["patient_id"])
    assert ("coordinator-user", "read", "priority comparison") in await m.audit(plain["patient_id"])


async def test_updates_withdrawal_and_found_elsewhere_are_events_and_audit_lines(matching):
    m = matching
    patient = (await m.enrol())["patient"]
    pid = patient["patient_id"]
    url = f"/cpts/{m.cpts}/patients/{pid}"
    updated = await m.client.patch(url, json={"commune_insee": "69259", "priority": {"c2s": True},
                                              "mobility": {"max_distance_km": 3}}, headers=m.secretary)
    assert updated.status_code == 200, updated.text
    assert updated.json()["commune_insee"] == "69259" and updated.json()["priority"]["group"] == "70+"
    assert updated.json()["mobility"]["max_distance_km"] == 3
    [(_, update)] = await m.events("patient.updated")
    assert set(update["changed"]) == {"commune", "mobility", "priority_facts"}
    [(_, change)] = await m.events("priority.changed")
    assert change["previous_facts"] == ["70+"] and change["priority_facts"] == ["70+", "c2s"]
    bad = await m.client.patch(url, json={"identity": {**patient["identity"], "ins_nir": "123"}},
                               headers=m.secretary)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "identity.ins_nir"

    found = await m.client.post(f"{url}/found-elsewhere", headers=m.secretary)
    assert found.json()["status"] == "found_elsewhere"
    [(_, event)] = await m.events("found_elsewhere")
    assert event["waiting_days"] == 0
    twice = await m.client.post(f"{url}/withdraw", json={"reason": "moved_away"}, headers=m.secretary)
    assert twice.status_code == 409  # found elsewhere: no longer on the list
    back = await m.enrol(expect=201)
    assert back["outcome"] == "re_enrolled" and back["patient"]["patient_id"] == pid
    withdrawn = await m.client.post(f"{url}/withdraw", json={"reason": "moved_away"}, headers=m.secretary)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert [a[1] for a in await m.audit(pid) if a[1] != "read"] == ["create", "update", "found-elsewhere",
                                                                     "re-enrol", "withdrawn"]
    kinds = [k for k, _ in await m.events()]
    assert kinds[-2:] == ["fr.cpts.matching.patient.enrolled.v1", "fr.cpts.matching.patient.withdrawn.v1"]


async def test_other_cpts_and_the_ars_see_nothing(matching):
    m = matching
    pid = (await m.enrol())["patient"]["patient_id"]
    other = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}", headers=m.other_coordinator)
    assert other.status_code == 404
    other_path = await m.client.get(f"/cpts/{m.other_cpts}/patients/{pid}", headers=m.other_coordinator)
    assert other_path.status_code == 404
    other_list = await m.client.get(f"/cpts/{m.cpts}/patients", headers=m.other_coordinator)
    assert other_list.status_code == 403
    enrol_elsewhere = await m.client.post(f"/cpts/{m.other_cpts}/patients", json=m.body(),
                                          headers=m.secretary)
    assert enrol_elsewhere.status_code == 403
    for path in (f"/cpts/{m.cpts}/patients", f"/cpts/{m.cpts}/patients/{pid}", f"/cpts/{m.cpts}/duplicates",
                 f"/cpts/{m.cpts}/rounds", "/proposals"):
        assert (await m.client.get(path, headers=m.ars)).status_code == 403, path
    gp = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}", headers=m.gp("810100000011"))
    assert gp.status_code == 403
    secretary_round = await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.secretary)
    assert secretary_round.status_code == 403
    assert [a[1] for a in await m.audit(pid)] == ["create"]  # nothing was read


async def test_the_same_person_enrolled_at_once_from_several_desks_gets_one_record(matching):
    m = matching
    body = m.body(identity={"ins_nir": m.nir()})
    responses = await asyncio.gather(*(
        m.client.post(f"/cpts/{m.cpts}/patients", json=body, headers=m.secretary) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["patient"]["patient_id"] for r in responses}) == 1
    assert len(await m.events("patient.enrolled")) == 1


async def test_the_daily_refresh_announces_facts_that_change_with_time(matching):
    m = matching
    discharged = (date.today() - timedelta(days=89)).isoformat()
    pid = (await m.enrol(m.body(identity={"birth_date": "1990-01-01"},
                                priority={"hospital_discharge_on": discharged})))["patient"]["patient_id"]
    weights = m.client.app.state.runtime.settings.priority
    assert await handlers.refresh_priorities(m.database, weights) == 0
    later = datetime.now(UTC) + timedelta(days=3)
    assert await handlers.refresh_priorities(m.database, weights, now=later) == 1
    [(_, change)] = await m.events("priority.changed")
    assert change["patient_id"] == pid and change["previous_group"] == "other_priority"
    assert change["priority_group"] == "none" and change["previous_facts"] == ["recent_hospital_discharge"]
    assert await handlers.refresh_priorities(m.database, weights, now=later) == 0
    assert ("system:patient-matching", "reprioritise", "daily priority refresh") in await m.audit(pid)
