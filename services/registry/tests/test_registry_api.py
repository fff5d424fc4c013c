"""CPTS territories, memberships, SAS participation and MT capacity through the registry API."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer

from cpts_events import decode, topics
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import running_service, settings_for
from cpts_registry.app import service
from cpts_registry.domain.cpts import size_band

CPTS, OTHER = "690049999", "690048888"
GP, NURSE = "810100000011", "810100000094"


def test_size_bands_follow_the_aci_thresholds_with_boundaries_in_the_upper_band():
    assert [size_band(p) for p in (0, 39_999, 40_000, 79_999, 80_000, 174_999, 175_000, 2_000_000)] == [
        1, 1, 2, 2, 3, 3, 4, 4]


class Api:
    def __init__(self, client, issuer: LocalIssuer) -> None:
        self.client = client
        self.issuer = issuer

    def as_(self, role: str, **scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.mint(subject=f'u-{role}', roles=[role], **scope)}"}

    async def __call__(self, method: str, path: str, role: str = "admin", scope: dict | None = None, **kwargs):
        return await self.client.request(method, path, headers=self.as_(role, **(scope or {})), **kwargs)


@pytest.fixture
async def api(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        a = Api(client, LocalIssuer(tmp_path / "var" / "local-issuer"))
        a.bootstrap, a.topic = kafka_broker, topic_prefix + topics.REGISTRY
        created = await a("POST", "/cpts", json={
            "cpts_id": CPTS, "name": "CPTS de l'Est lyonnais", "communes": ["69259", "69290", "69029"],
            "stage": "aci_signed", "aci_signed_on": "2024-03-01", "missions": ["1a-medecin-traitant"]})
        assert created.status_code == 201, created.text
        for idnps, profession, specialty, commune in ((GP, "10", "SM54", "69259"), (NURSE, "60", None, "69029")):
            response = await a("POST", "/professionals", json={
                "idnps": idnps, "family_name": "Morel" if idnps == GP else "Muller", "given_name": "A",
                "profession_code": profession, "specialty_code": specialty, "commune_insee": commune,
                "cpts_ids": [CPTS]})
            assert response.status_code == 201, response.text
        yield a


async def events_of(api: Api, event_type: str, count: int = 1, timeout: float = 10.0) -> list:
    consumer = AIOKafkaConsumer(api.topic, bootstrap_servers=api.bootstrap, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    found = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [decode(r.headers, r.key, r.value) for r in records
                          if dict(r.headers)["ce_type"] == event_type.encode()]
    finally:
        await consumer.stop()
    return found


async def test_a_cpts_gets_its_population_and_size_band_from_its_communes(api):
    cpts = (await api("GET", f"/cpts/{CPTS}", "ars")).json()
    assert cpts["communes"] == ["69029", "69259", "69290"]
    assert cpts["population"] > 150_000 and cpts["size_band"] == 3
    assert cpts["departements"] == ["69"] and cpts["members"] == 2
    [event] = await events_of(api, "fr.cpts.registry.cpts.registered.v1")
    assert event.payload.size_band == 3 and event.key == CPTS


async def test_a_commune_belongs_to_at_most_one_cpts(api):
    overlap = await api("POST", "/cpts", json={"cpts_id": OTHER, "name": "Voisine", "communes": ["69290", "69286"]})
    assert overlap.status_code == 409
    assert overlap.json()["errors"][0] == {"field": "communes", "in": "body", "value": "69290",
                                           "message": f"already in CPTS {CPTS}"}
    unknown = await api("POST", "/cpts", json={"cpts_id": OTHER, "name": "Voisine", "communes": ["69999"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["value"] == "69999"
    malformed = await api("POST", "/cpts", json={"cpts_id": "12", "name": "X", "communes": ["69286"]})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0] == {**malformed.json()["errors"][0], "field": "cpts_id", "value": "12"}
    assert (await api("POST", "/cpts", json={"cpts_id": OTHER, "name": "Voisine",
                                             "communes": ["69286"]})).status_code == 201


async def test_a_coordinator_changes_the_territory_of_their_cpts_only(api):
    mine = {"cpts_ids": [CPTS]}
    changed = await api("PUT", f"/cpts/{CPTS}/territory", "coordinator", mine, json={"communes": ["69259"]})
    assert changed.status_code == 200 and changed.json()["size_band"] == 2
    other = await api("PUT", f"/cpts/{OTHER}/territory", "coordinator", mine, json={"communes": ["69286"]})
    assert other.status_code == 403
    stage = await api("PUT", f"/cpts/{CPTS}/stage", json={"stage": "aci_signed"})
    assert stage.status_code == 422 and stage.json()["errors"][0]["field"] == "aci_signed_on"
    [event] = await events_of(api, "fr.cpts.registry.cpts.territory.changed.v1")
    assert event.payload.communes == ["69259"]


async def test_a_professional_declares_their_sas_participation_and_no_one_else_can(api):
    me = {"idnps": GP}
    body = {"mode": "cpts", "hours_per_week": 4, "accepts_en_sus": True, "en_sus_weekly_cap": 5,
            "start_date": "2026-01-05"}
    declared = await api("PUT", f"/professionals/{GP}/sas-participation", "professional", me, json=body)
    assert declared.status_code == 200, declared.text
    too_little = await api("PUT", f"/professionals/{GP}/sas-participation", "professional", me,
                           json={**body, "hours_per_week": 1.5})
    assert too_little.status_code == 422
    assert too_little.json()["errors"][0]["field"] == "hours_per_week"
    assert too_little.json()["errors"][0]["value"] == 1.5
    someone_else = await api("PUT", f"/professionals/{NURSE}/sas-participation", "professional", me, json=body)
    assert someone_else.status_code == 403
    assert (await api("DELETE", f"/professionals/{GP}/sas-participation", "professional", me)).status_code == 204
    events = await events_of(api, "fr.cpts.registry.sas_participation.changed.v1", count=2)
    assert [e.payload.participating for e in events] == [True, False]
    assert events[0].payload.hours_per_week == 4 and events[0].payload.en_sus_weekly_cap == 5


async def test_an_mt_capacity_change_is_on_kafka_within_a_second(api):
    me = {"idnps": GP}
    negative = await api("PUT", f"/professionals/{GP}/mt-capacity", "professional", me,
                         json={"accepting": True, "new_patients_per_month": -3})
    assert negative.status_code == 422 and negative.json()["errors"][0]["field"] == "new_patients_per_month"
    nurse = await api("PUT", f"/professionals/{NURSE}/mt-capacity", json={"accepting": True,
                                                                          "new_patients_per_month": 3})
    assert nurse.status_code == 422
    consumer = AIOKafkaConsumer(api.topic, bootstrap_servers=api.bootstrap, auto_offset_reset="latest",
                                group_id=None)
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.seek_to_end(tp)
        started = time.monotonic()
        accepted = await api("PUT", f"/professionals/{GP}/mt-capacity", "professional", me, json={
            "accepting": True, "new_patients_per_month": 6, "publics": ["adults", "home_bound"],
            "until": "2027-06-30"})
        assert accepted.status_code == 200, accepted.text
        record = None
        while record is None and time.monotonic() - started < 5:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                record = next((r for r in records if dict(r.headers)["ce_type"]
                               == b"fr.cpts.registry.mt_capacity.changed.v1"), record)
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
    event = decode(record.headers, record.key, record.value)
    assert event.payload.new_patients_per_month == 6 and event.payload.publics == ["adults", "home_bound"]
    assert elapsed < 1.0, f"event seen after {elapsed:.2f} s"
    detail = (await api("GET", f"/professionals/{GP}", "coordinator")).json()
    assert detail["mt_capacity"]["accepting"] is True and detail["cpts_ids"] == [CPTS]


async def test_memberships_change_and_are_announced(api):
    coordinator = {"cpts_ids": [CPTS]}
    assert (await api("PUT", f"/cpts/{CPTS}/members/{GP}", "coordinator", coordinator,
                      json={"status": "active"})).status_code == 204
    assert (await api("DELETE", f"/cpts/{CPTS}/members/{NURSE}", "coordinator", coordinator)).status_code == 204
    members = (await api("GET", f"/cpts/{CPTS}/members", "secretary")).json()
    assert [m["idnps"] for m in members["items"]] == [GP]
    events = await events_of(api, "fr.cpts.registry.membership.changed.v1", count=2)
    assert [(e.payload.idnps, e.payload.status) for e in events] in (
        [(GP, "active"), (NURSE, "left")], [(NURSE, "left"), (GP, "active")])


async def test_professionals_are_searched_by_name_profession_and_distance(api):
    by_name = (await api("GET", "/professionals", "regulator", params={"name": "mor"})).json()
    assert [p["idnps"] for p in by_name["items"]] == [GP]
    nurses = (await api("GET", "/professionals", "regulator", params={"profession": "60"})).json()
    assert [p["idnps"] for p in nurses["items"]] == [NURSE]
    near = (await api("GET", "/professionals", "regulator",
                      params={"commune": "69029", "radius_km": 10})).json()
    assert [p["idnps"] for p in near["items"]] == [NURSE, GP]
    assert near["items"][0]["distance_km"] == 0 and 0 < near["items"][1]["distance_km"] < 10
    far = (await api("GET", "/professionals", "regulator", params={"commune": "75056", "radius_km": 5})).json()
    assert far["total"] == 0
    no_centre = await api("GET", "/professionals", "regulator", params={"radius_km": 5})
    assert no_centre.status_code == 422 and no_centre.json()["errors"][0]["field"] == "radius_km"
    communes = (await api("GET", "/communes", "secretary", params={"q": "vénis"})).json()
    assert communes[0]["insee"] == "69259" and communes[0]["postcodes"] == ["69200"]
