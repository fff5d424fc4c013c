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


async def test_a_change_is_answered_from_its_own_transaction_with_its_audit_lines(matching):
    """The database going away just after a command's commit: the change is stored, so it is answered 200/201
    with the record, read and audited in the command's transaction (a read after the commit, in a session of
    its own, would answer 503 for a stored change, whose retry is refused: already answered, already
    resolved)."""
    m = matching
    away = m.away_after_commit
    await m.add_gp("810100000001", capacity=5)
    rose = (await m.enrol())["patient"]["patient_id"]
    paul = (await m.enrol(m.body(identity={"birth_name": "Martin", "first_names": "Paul",
                                           "birth_date": "1948-05-06", "sex": "M"})))["patient"]["patient_id"]
    lina = (await m.enrol(m.body(identity={"birth_name": "Garnier", "first_names": "Lina",
                                           "birth_date": "1975-07-08"})))["patient"]["patient_id"]
    patient = f"/cpts/{m.cpts}/patients"

    updated = await away(m.client.patch(f"{patient}/{rose}", json={"commune_insee": "69259"}, headers=m.secretary))
    assert updated.status_code == 200, updated.text
    assert updated.json()["commune_insee"] == "69259" and updated.json()["status"] == "waiting"

    assert (await m.client.post(f"/cpts/{m.cpts}/rounds", headers=m.coordinator)).status_code == 201
    proposals = (await m.client.get(f"/cpts/{m.cpts}/proposals", headers=m.secretary)).json()["items"]
    proposal = {p["patient_id"]: p["proposal_id"] for p in proposals}
    accepted = await away(m.client.post(f"/proposals/{proposal[rose]}/accept", headers=m.gp("810100000001")))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["patient"]["family_name"] == "Lambert"
    declined = await away(m.client.post(f"/proposals/{proposal[paul]}/decline", json={"reason": "too_far"},
                                        headers=m.gp("810100000001")))
    assert declined.status_code == 200 and declined.json()["status"] == "declined", declined.text
    refused = await away(m.client.post(f"/cpts/{m.cpts}/proposals/{proposal[lina]}/patient-decline",
                                       json={"reason": "too_far"}, headers=m.secretary))
    assert refused.status_code == 200 and refused.json()["declined_by"] == "patient", refused.text

    withdrawn = await away(m.client.post(f"{patient}/{paul}/withdraw", json={"reason": "moved_away"},
                                         headers=m.secretary))
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn", withdrawn.text
    found = await away(m.client.post(f"{patient}/{lina}/found-elsewhere", headers=m.secretary))
    assert found.status_code == 200 and found.json()["status"] == "found_elsewhere", found.text

    typo = (await m.enrol(m.body(identity={"birth_name": "Lambret", "phone": "0699999999"})))["patient"]
    [candidate] = (await m.client.get(f"/cpts/{m.cpts}/duplicates", headers=m.secretary)).json()["items"]
    merged = await away(m.client.post(f"/cpts/{m.cpts}/duplicates/{candidate['candidate_id']}/resolve",
                                      json={"decision": "merge"}, headers=m.secretary))
    assert merged.status_code == 200 and merged.json()["status"] == "merged", merged.text
    assert merged.json()["kept"]["patient_id"] == rose and merged.json()["kept"]["identity"]["birth_name"] == "Lambert"

    def changes(lines: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        """The lines of the commands and of their answers (not those of the lists this test read)."""
        lists = ("matching: proposals of the CPTS", "duplicate review")
        return [(action, purpose) for _, action, purpose in lines if purpose not in lists]

    assert changes(await m.audit(rose)) == [
        ("create", "enrolment (guichet)"), ("update", "correction: commune"), ("read", "update"),
        ("propose", f"matching round {proposals[0]['round_id']}"),
        ("accept", f"proposal {proposal[rose]} accepted: médecin traitant declared"),
        ("read", f"proposal {proposal[rose]}"),
        ("merge", f"duplicate merged into {rose}"), ("read", "duplicate merged")]
    assert ("decline", f"proposal {proposal[paul]} declined by the gp") in changes(await m.audit(paul))
    assert changes(await m.audit(paul))[-2:] == [("withdrawn", "moved_away"), ("read", "withdrawal")]
    assert ("decline", f"proposal {proposal[lina]} declined by the patient") in changes(await m.audit(lina))
    assert changes(await m.audit(lina))[-2:] == [("found-elsewhere", "found_elsewhere"),
                                                 ("read", "found elsewhere")]
    assert ("merge", f"duplicate merged into {rose}") in changes(await m.audit(typo["patient_id"]))
