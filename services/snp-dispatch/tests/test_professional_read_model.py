"""snp-dispatch learns the professionals from the registry's events, never from its tables."""

from __future__ import annotations

import sqlalchemy as sa

from cpts_events.registry import ProfessionalRegistered
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for
from cpts_snp_dispatch.app import service


async def test_a_registered_professional_becomes_an_effecteur_for_regulators(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    registered = ProfessionalRegistered(
        idnps="810100000011", family_name="Morel", given_name="Camille", profession_code="10",
        specialty_code="SM54", commune_insee="69259", cpts_ids=["690049999"])
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    regulator = {"Authorization": f"Bearer {issuer.mint(subject='r', roles=['regulator'])}"}
    gp = {"Authorization": f"Bearer {issuer.mint(subject='p', roles=['professional'])}"}
    async with running_service(service, settings) as client:
        missing = await client.get("/effecteurs/810100000011", headers=regulator)
        await publish(registered)

        async def found():
            response = await client.get("/effecteurs/810100000011", headers=regulator)
            return response.status_code == 200 and response

        effecteur = await eventually(found)
        forbidden = await client.get("/effecteurs/810100000011", headers=gp)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert effecteur.json()["commune_insee"] == "69259"
    assert forbidden.status_code == 403


async def test_the_effecteur_view_follows_sas_participation_sites_memberships_and_deactivation(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    from datetime import date

    from cpts_events.registry import (
        MembershipChanged, PracticeSite, ProfessionalDeactivated, ProfessionalSitesChanged, SasParticipationChanged,
    )

    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    idnps = "810100000011"
    payloads = [
        ProfessionalRegistered(idnps=idnps, family_name="Morel", given_name="Camille", profession_code="10",
                               cpts_ids=["690049999"]),
        ProfessionalSitesChanged(idnps=idnps, sites=[PracticeSite(site_id="C123", commune_insee="69259",
                                                                  lat=45.7, lon=4.88, practice_mode="L")]),
        SasParticipationChanged(idnps=idnps, participating=True, mode="cpts", hours_per_week=4,
                                accepts_en_sus=True, en_sus_weekly_cap=5, start_date=date(2026, 1, 5)),
        MembershipChanged(idnps=idnps, cpts_id="690048888", status="active"),
        MembershipChanged(idnps=idnps, cpts_id="690049999", status="left"),
        ProfessionalDeactivated(idnps=idnps, reason="absent-from-rpps-import"),
    ]
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    regulator = {"Authorization": f"Bearer {issuer.mint(subject='r', roles=['regulator'])}"}
    async with running_service(service, settings) as client:
        await publish(*payloads)

        async def settled():
            response = await client.get(f"/effecteurs/{idnps}", headers=regulator)
            return response.status_code == 200 and not response.json()["active"] and response.json()

        view = await eventually(settled)
        async with client.app.state.runtime.database.sessions() as session:
            members = (await session.execute(sa.text(
                "SELECT cpts_id FROM cpts_member_view WHERE idnps = :idnps"), {"idnps": idnps})).scalars().all()
    assert view["cpts_ids"] == ["690048888"]
    assert members == ["690048888"]  # the membership rows follow the view (who sees whose CPTS slots)
    assert view["sas_participant"] and view["accepts_en_sus"] and view["en_sus_weekly_cap"] == 5
    assert view["sites"][0]["commune_insee"] == "69259"
