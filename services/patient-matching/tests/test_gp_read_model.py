"""patient-matching keeps the GPs who can become médecin traitant, scoped to the coordinator's CPTS."""

from __future__ import annotations

from cpts_events.registry import ProfessionalRegistered
from cpts_patient_matching.app import service
from cpts_patient_matching.domain.gp import can_be_medecin_traitant
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for


def test_only_general_practitioners_can_be_medecin_traitant():
    assert can_be_medecin_traitant("10", "SM54")
    assert not can_be_medecin_traitant("10", "SM04")
    assert not can_be_medecin_traitant("60", None)


async def test_gps_are_kept_and_other_professions_are_not(database_url, kafka_broker, topic_prefix, tmp_path,
                                                          publish):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    events = [
        ProfessionalRegistered(idnps="810100000011", family_name="A", given_name="B", profession_code="10",
                               specialty_code="SM54", cpts_ids=["690049999"]),
        ProfessionalRegistered(idnps="810100000094", family_name="C", given_name="D", profession_code="60",
                               cpts_ids=["690049999"]),
    ]
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    mine = {"Authorization": f"Bearer {issuer.mint(subject='c', roles=['coordinator'], cpts_ids=['690049999'])}"}
    other = {"Authorization": f"Bearer {issuer.mint(subject='o', roles=['coordinator'], cpts_ids=['010000001'])}"}
    async with running_service(service, settings) as client:
        await publish(*events)

        async def gp_known():
            response = await client.get("/gps/810100000011", headers=mine)
            return response.status_code == 200 and response

        await eventually(gp_known)
        nurse = await client.get("/gps/810100000094", headers=mine)
        out_of_scope = await client.get("/gps/810100000011", headers=other)
    assert nurse.status_code == 404
    assert out_of_scope.status_code == 403


async def test_a_gp_capacity_to_take_new_patients_follows_the_registry(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    from datetime import date

    from cpts_events.registry import MtCapacityChanged, ProfessionalUpdated

    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    gp, other = "810100000011", "810100000029"
    payloads = [
        ProfessionalRegistered(idnps=gp, family_name="A", given_name="B", profession_code="10",
                               specialty_code="SM54", cpts_ids=["690049999"]),
        MtCapacityChanged(idnps=gp, accepting=True, new_patients_per_month=6, publics=["adults", "children"],
                          until=date(2027, 6, 30)),
        ProfessionalRegistered(idnps=other, family_name="C", given_name="D", profession_code="10",
                               specialty_code="SM54", cpts_ids=["690049999"]),
        ProfessionalUpdated(idnps=other, family_name="C", given_name="D", profession_code="10",
                            specialty_code="SM04", cpts_ids=["690049999"]),
    ]
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    mine = {"Authorization": f"Bearer {issuer.mint(subject='c', roles=['coordinator'], cpts_ids=['690049999'])}"}
    async with running_service(service, settings) as client:
        await publish(*payloads)

        async def settled():
            a = await client.get(f"/gps/{gp}", headers=mine)
            b = await client.get(f"/gps/{other}", headers=mine)
            return a.status_code == 200 and a.json()["accepting"] and b.status_code == 404 and a.json()

        view = await eventually(settled)
    assert view["new_patients_per_month"] == 6 and view["publics"] == ["adults", "children"]
    assert view["accepting_until"] == "2027-06-30"
