"""Registering professionals through the registry API, and the events it publishes."""

from __future__ import annotations


from aiokafka import AIOKafkaConsumer

from cpts_events import decode, topics
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import DatabaseAway, running_service, settings_for
from cpts_registry.app import service

CPTS = "690049999"
BODY = {"idnps": "810100000011", "family_name": "Morel", "given_name": "Camille", "profession_code": "10",
        "specialty_code": "SM54", "commune_insee": "69259", "cpts_ids": [CPTS]}


def auth(tmp_path, role: str, **scope) -> dict[str, str]:
    token = LocalIssuer(tmp_path / "var" / "local-issuer").mint(subject="t", roles=[role], **scope)
    return {"Authorization": f"Bearer {token}"}


async def register_cpts(client, tmp_path) -> None:
    response = await client.post("/cpts", headers=auth(tmp_path, "admin"),
                                 json={"cpts_id": CPTS, "name": "CPTS de l'Est lyonnais", "communes": ["69259"]})
    assert response.status_code == 201, response.text


async def first_record(kafka_broker: str, topic: str, event_type: str):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    try:
        while True:
            record = await consumer.getone()
            if dict(record.headers)["ce_type"] == event_type.encode():
                return record
    finally:
        await consumer.stop()


async def test_registering_a_professional_stores_it_and_publishes_professional_registered(
        database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        await register_cpts(client, tmp_path)
        coordinator = auth(tmp_path, "coordinator", cpts_ids=[CPTS])
        created = await client.post("/professionals", json=BODY, headers=coordinator)
        assert created.status_code == 201, created.text
        assert created.json()["registered_at"].endswith("Z") or "+00:00" in created.json()["registered_at"]
        read = await client.get("/professionals/810100000011", headers=auth(tmp_path, "regulator"))
        assert read.json()["family_name"] == "Morel"
        record = await first_record(kafka_broker, topic_prefix + topics.REGISTRY, "fr.cpts.registry.professional.registered.v1")
    event = decode(record.headers, record.key, record.value)
    assert event.type == "fr.cpts.registry.professional.registered.v1"
    assert event.source == "/cpts/registry"
    assert event.subject == "professional/810100000011"
    assert record.key == b"810100000011"
    assert event.payload.cpts_ids == [CPTS]


async def test_professionals_are_listed_by_page(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        await register_cpts(client, tmp_path)
        admin = auth(tmp_path, "admin")
        for i in range(5):
            body = dict(BODY, idnps=f"8101000000{i:02d}")
            assert (await client.post("/professionals", json=body, headers=admin)).status_code == 201
        page = await client.get("/professionals", params={"limit": 2, "offset": 2}, headers=admin)
        too_big = await client.get("/professionals", params={"limit": 10_000}, headers=admin)
    assert [p["idnps"] for p in page.json()["items"]] == ["810100000002", "810100000003"]
    assert too_big.status_code == 422
    assert too_big.json()["errors"][0]["field"] == "limit"


async def test_a_change_is_answered_from_its_own_transaction(database_url, kafka_broker, topic_prefix,
                                                                    tmp_path):
    """The database going away just after the commit: the change is stored, so it is answered 2xx (a read
    after the commit would answer 503, and the retry of a registration would be refused as already
    registered)."""
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        away = DatabaseAway(client.app.state.runtime.database).after_commit
        admin = auth(tmp_path, "admin")
        cpts = await away(client.post("/cpts", headers=admin, json={
            "cpts_id": CPTS, "name": "CPTS de l'Est lyonnais", "communes": ["69259"]}))
        created = await away(client.post("/professionals", json=BODY, headers=admin))
        changed = await away(client.patch("/professionals/810100000011", json={"given_name": "Camille-Anne"},
                                          headers=admin))
        staged = await away(client.put(f"/cpts/{CPTS}/stage", headers=admin,
                                       json={"stage": "aci_signed", "aci_signed_on": "2026-01-15"}))
        assert cpts.status_code == 201, cpts.text
        assert cpts.json()["communes"] == ["69259"]
        assert created.status_code == 201, created.text
        assert created.json()["family_name"] == "Morel"
        assert [m["cpts_id"] for m in created.json()["memberships"]] == [CPTS]
        assert changed.status_code == 200, changed.text
        assert changed.json()["given_name"] == "Camille-Anne"
        assert staged.status_code == 200, staged.text
        assert staged.json()["stage"] == "aci_signed"
