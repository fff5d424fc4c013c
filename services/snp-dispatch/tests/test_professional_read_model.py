"""snp-dispatch learns the professionals from the registry's events, never from its tables."""

from __future__ import annotations

from cpts_events import encode, new_event, topics
from cpts_events.registry import ProfessionalRegistered
from cpts_platform.auth import LocalIssuer
from cpts_platform.kafka import new_producer
from cpts_platform.testing import eventually, running_service, settings_for
from cpts_snp_dispatch.app import service


async def test_a_registered_professional_becomes_an_effecteur_for_regulators(
        database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    record = encode(new_event(ProfessionalRegistered(
        idnps="810100000011", family_name="Morel", given_name="Camille", profession_code="10",
        specialty_code="SM54", commune_insee="69259", cpts_ids=["690049999"]), source="/cpts/registry"))
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    regulator = {"Authorization": f"Bearer {issuer.mint(subject='r', roles=['regulator'])}"}
    gp = {"Authorization": f"Bearer {issuer.mint(subject='p', roles=['professional'])}"}
    producer = new_producer(kafka_broker, client_id="test")
    await producer.start()
    try:
        async with running_service(service, settings) as client:
            missing = await client.get("/effecteurs/810100000011", headers=regulator)
            await (await producer.send(topic_prefix + topics.REGISTRY, value=record.value, key=record.key,
                                       headers=record.headers))

            async def found():
                response = await client.get("/effecteurs/810100000011", headers=regulator)
                return response.status_code == 200 and response

            effecteur = await eventually(found)
            forbidden = await client.get("/effecteurs/810100000011", headers=gp)
    finally:
        await producer.stop()
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert effecteur.json()["commune_insee"] == "69259"
    assert forbidden.status_code == 403
