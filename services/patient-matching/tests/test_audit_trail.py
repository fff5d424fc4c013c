"""Every read of patient data is in the audit trail, lists included (one line per record served), with the
purpose the client declares; admins query it; the database refuses to change it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


async def test_the_cpts_list_of_proposals_is_audited_one_line_per_patient(matching):
    m = matching
    await m.add_gp("810100000001", capacity=5)
    rose = await m.enrol()
    paul = await m.enrol(m.body(identity={"birth_name": "Martin", "first_names": "Paul", "birth_date": "1948-05-06",
                                          "sex": "M"}))
    assert (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).status_code == 201
    listed = await m.client.get(f"/cpts/{m.cpts}/proposals", headers={**m.secretary, "X-Purpose": "matching"})
    assert listed.status_code == 200 and listed.json()["total"] == 2
    for patient in (rose, paul):
        assert ("secretary-user", "read", "matching: proposals of the CPTS [matching]") in await m.audit(
            patient["patient"]["patient_id"])


async def test_an_unknown_declared_purpose_is_refused_before_anything_is_served(matching):
    m = matching
    rose = await m.enrol()
    pid = rose["patient"]["patient_id"]
    response = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}", headers={**m.secretary, "X-Purpose": "x" * 41})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "X-Purpose"
    declared = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}",
                                  headers={**m.secretary, "X-Purpose": "patient-request"})
    assert declared.status_code == 200
    assert [a[1:] for a in await m.audit(pid)] == [("create", "enrolment (guichet)"),
                                                   ("read", "follow-up [patient-request]")]
    # The purpose parameter of the record's route: one of the same list, never free text (a patient's name...).
    free = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}", params={"purpose": "appel de M. Durand"},
                              headers=m.secretary)
    assert free.status_code == 422 and free.json()["errors"][0]["field"] == "purpose"
    quality = await m.client.get(f"/cpts/{m.cpts}/patients/{pid}", params={"purpose": "quality"},
                                 headers=m.secretary)
    assert quality.status_code == 200
    assert [a[1:] for a in await m.audit(pid)][-1] == ("read", "quality")


async def test_admins_query_the_trail_by_record_and_subject_and_nobody_rewrites_it(matching):
    m = matching
    rose = await m.enrol()
    pid = rose["patient"]["patient_id"]
    await m.client.get(f"/cpts/{m.cpts}/patients", headers=m.coordinator)
    for headers in (m.secretary, m.coordinator, m.ars, m.gp("810100000001")):
        assert (await m.client.get("/audit", headers=headers)).status_code == 403
    admin = m.headers("admin")
    by_record = (await m.client.get("/audit", params={"record_type": "patient", "record_id": pid},
                                    headers=admin)).json()
    assert [(i["subject"], i["action"]) for i in by_record["items"]] == [("secretary-user", "create"),
                                                                         ("coordinator-user", "read")]
    by_subject = (await m.client.get("/audit", params={"subject": "coordinator-user"}, headers=admin)).json()
    assert by_subject["total"] == 1 and by_subject["items"][0]["purpose"] == "list of patients"
    for statement in ("UPDATE audit_log SET purpose = 'none'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with m.database.transaction() as session:
                await session.execute(sa.text(statement))
    assert len(await m.audit(pid)) == 2
