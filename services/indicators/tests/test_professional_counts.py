"""The indicators service counts each registration once per CPTS, whatever the redeliveries."""

from __future__ import annotations

from cpts_events import encode, new_event
from cpts_events.registry import CptsRegistered, ProfessionalRegistered
from cpts_indicators.app import service
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for


async def test_each_registration_counts_once_per_cpts_even_when_delivered_twice(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    records = [
        encode(new_event(ProfessionalRegistered(idnps=f"81010000000{i}", family_name="A", given_name="B",
                                                profession_code="10", cpts_ids=cpts),
                         source="/cpts/registry"))
        for i, cpts in enumerate([["690049999"], ["690049999", "010000001"], ["690049999"]])
    ]
    territories = [CptsRegistered(cpts_id=cpts_id, name=f"CPTS {cpts_id}", stage="aci_signed",
                                  communes=[commune], population=50000, size_band=2,
                                  departements=[commune[:2]])
                   for cpts_id, commune in (("690049999", "69259"), ("010000001", "01053"))]
    token = LocalIssuer(tmp_path / "var" / "local-issuer").mint(subject="t", roles=["ars"],
                                                                departements=["69", "01"])
    headers = {"Authorization": f"Bearer {token}"}
    async with running_service(service, settings) as client:
        await publish(*territories, *records, *records[:2])

        async def counts():
            a = (await client.get("/indicators/cpts/690049999/professionals", headers=headers)).json()
            b = (await client.get("/indicators/cpts/010000001/professionals", headers=headers)).json()
            return (a.get("professionals"), b.get("professionals")) == (3, 1) and (a, b)

        a, b = await eventually(counts)
        consumed = (await client.get("/metrics")).text
    assert a["last_event_time"] is not None
    assert (a["members"], b["members"]) == (3, 1)
    assert 'cpts_events_consumed_total{service="indicators"' in consumed


async def test_a_coordinator_sees_only_their_cpts(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    async with running_service(service, settings) as client:
        mine = issuer.mint(subject="c", roles=["coordinator"], cpts_ids=["690049999"])
        other = await client.get("/indicators/cpts/010000001/professionals",
                                 headers={"Authorization": f"Bearer {mine}"})
        own = await client.get("/indicators/cpts/690049999/professionals",
                               headers={"Authorization": f"Bearer {mine}"})
    assert other.status_code == 403
    assert own.status_code == 200 and own.json()["professionals"] == 0
