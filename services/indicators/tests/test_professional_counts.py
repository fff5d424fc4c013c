"""The indicators service counts each registration once per CPTS, whatever the redeliveries, and keeps the
members of each CPTS from the registry's events."""

from __future__ import annotations

import sqlalchemy as sa

from cpts_events import encode, new_event
from cpts_events.registry import CptsRegistered, MembershipChanged, ProfessionalRegistered
from cpts_indicators.app import service
from cpts_indicators.consumers import on_memberships_changed, on_professionals_registered
from cpts_indicators.repository import CptsMember, CptsProfessionalCount
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


async def test_memberships_applied_in_bulk_keep_the_order_of_the_events(database, kit):
    """A run of registry events applied in one call gives what they give one at a time: a status change keeps
    the date joined, a departure removes the member, joining again makes a member since then."""
    a, b = "690049999", "010000001"
    registered = [kit.at(ProfessionalRegistered(idnps=kit.gp(n), family_name="A", given_name="B",
                                                profession_code="10", cpts_ids=cpts), kit.paris(when))
                  for n, cpts, when in ((1, [a], "2026-01-05T09:00"), (2, [a, b], "2026-01-06T09:00"),
                                        (3, [a], "2026-01-07T09:00"))]
    changes = [kit.at(MembershipChanged(idnps=kit.gp(n), cpts_id=cpts_id, status=status), kit.paris(when))
               for n, cpts_id, status, when in (
                   (1, a, "active", "2026-02-01T09:00"),   # keeps the date joined
                   (2, b, "left", "2026-02-02T09:00"),     # gone
                   (3, a, "left", "2026-02-03T09:00"),     # gone, then back: a member since its return
                   (3, a, "active", "2026-02-04T09:00"),
                   (4, b, "active", "2026-02-05T09:00"),   # unknown until now: a member since then
                   (4, b, "left", "2026-02-06T09:00"),     # and gone again within the same run
                   (2, b, "left", "2026-02-07T09:00"))]    # leaving twice is leaving
    async with database.transaction() as session:
        await on_professionals_registered(session, registered)
    async with database.transaction() as session:
        await on_memberships_changed(session, changes)
        # A second run on top of the stored state: a status change keeps the date joined.
        await on_memberships_changed(session, [kit.at(MembershipChanged(idnps=kit.gp(3), cpts_id=a,
                                                                        status="adherent"),
                                                      kit.paris("2026-03-01T09:00"))])
    async with database.sessions() as session:
        members = {(m.cpts_id, m.idnps): (m.status, m.since) for m in
                   (await session.execute(sa.select(CptsMember))).scalars()}
        counts = {c.cpts_id: (c.professionals, c.last_event_time) for c in
                  (await session.execute(sa.select(CptsProfessionalCount))).scalars()}
    assert members == {(a, kit.gp(1)): ("active", kit.paris("2026-01-05T09:00")),
                       (a, kit.gp(2)): ("adherent", kit.paris("2026-01-06T09:00")),
                       (a, kit.gp(3)): ("adherent", kit.paris("2026-02-04T09:00"))}
    assert counts == {a: (3, kit.paris("2026-01-07T09:00")), b: (1, kit.paris("2026-01-06T09:00"))}
