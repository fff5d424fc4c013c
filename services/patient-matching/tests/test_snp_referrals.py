"""Patients seen by the SAS without a médecin traitant, who consented to be referred, are enrolled from
snp-dispatch's `patient_without_mt.seen` events: in the request's CPTS or the CPTS of their commune, once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from cpts_events.registry import CptsRegistered
from cpts_events.snp_dispatch import PatientIdentity, PatientWithoutMtSeen
from cpts_platform.testing import eventually


def seen(*, cpts_id: str | None, commune: str = "69266", **identity) -> PatientWithoutMtSeen:
    person = {"family_name": "Lambert", "given_name": "Rose", "birth_date": date(1950, 3, 2), "sex": "F",
              "phone": "0612345678", **identity}
    return PatientWithoutMtSeen(request_id=str(uuid.uuid4()), appointment_id=str(uuid.uuid4()),
                                cpts_id=cpts_id, commune_insee=commune, patient=PatientIdentity(**person),
                                seen_by="810100000011", seen_at=datetime.now(UTC))


async def test_patients_seen_without_mt_are_enrolled_once_in_their_cpts(matching, publish):
    m = matching
    await publish(CptsRegistered(cpts_id=m.cpts, name="CPTS de l'Est lyonnais", stage="aci_signed",
                                 communes=["69266", "69256"], population=200_000, size_band=4,
                                 departements=["69"]))

    async def territory_known():  # another topic, another consumer: no order between them
        async with m.database.sessions() as session:
            return (await session.execute(sa.text("SELECT count(*) FROM cpts_view"))).scalar_one() == 1

    await eventually(territory_known)
    snp = "/cpts/snp-dispatch"
    good_nir = m.nir()
    await publish(seen(cpts_id=None, ins_nir=good_nir), source=snp)              # CPTS from the commune
    await publish(seen(cpts_id=m.cpts, family_name="LAMBERT"), source=snp)        # the same person again
    await publish(seen(cpts_id=None, commune="75056", family_name="Durand"), source=snp)  # no CPTS of ours
    await publish(seen(cpts_id=m.cpts, family_name="Futur",
                       birth_date=date.today() + timedelta(days=5)), source=snp)  # cannot be enrolled: DLQ
    await publish(seen(cpts_id=m.cpts, family_name="Bernard", given_name="Paul", sex="M",
                       ins_nir=good_nir[:13] + "00"), source=snp)  # bad NIR: enrolled without it

    async def all_seen():  # keyed by request: the events may be applied in any order
        page = (await m.client.get(f"/cpts/{m.cpts}/patients", headers=m.secretary)).json()
        rose = [p["patient_id"] for p in page["items"] if p["birth_name"].lower() == "lambert"]
        enrolments = [a for a in await m.audit(rose[0]) if a[0] == "event:snp-dispatch"] if rose else []
        return page["total"] == 2 and len(enrolments) == 2 and page

    page = await eventually(all_seen)
    by_name = {p["birth_name"].lower(): p for p in page["items"]}  # either Lambert may come first
    assert set(by_name) == {"lambert", "bernard"}
    rose = (await m.client.get(f"/cpts/{m.cpts}/patients/{by_name['lambert']['patient_id']}",
                               headers=m.secretary)).json()
    assert rose["source"] == "snp" and rose["consent_source"] == "snp_referral"
    assert rose["identity"]["ins_nir"] == good_nir and rose["identity"]["phone"] == "0612345678"
    paul = (await m.client.get(f"/cpts/{m.cpts}/patients/{by_name['bernard']['patient_id']}",
                               headers=m.secretary)).json()
    assert paul["identity"]["ins_nir"] is None
    enrolled = [p for _, p in await m.events("patient.enrolled")]
    assert [e["source"] for e in enrolled] == ["snp", "snp"]
    audit = [a[1] for a in await m.audit(rose["patient_id"]) if a[0] == "event:snp-dispatch"]
    assert audit[0] == "create" and audit[1] in ("match", "update")  # the second one found her record
