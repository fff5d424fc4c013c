"""The regional view for the ARS: every CPTS of a région from the registry's events (stage, size band,
population, members), and the share of the région's population covered by an operating CPTS."""

from __future__ import annotations

from cpts_events import registry as r
from cpts_geo.communes import communes, departements
from cpts_indicators.api.custom import regional_view
from cpts_indicators.app import service
from cpts_indicators.consumers import on_memberships_changed, on_professionals_registered
from cpts_indicators.repository import registry_cpts
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import running_service, settings_for

RHONE, AIN, ISERE, PARIS = "690049999", "010000001", "380000017", "750000019"


def region_population(code: str) -> int:
    return sum(c.population for c in communes() if c.kind == "COM" and c.region == code)


async def registry_history(database, kit) -> None:
    """Four CPTS, three of them in Auvergne-Rhône-Alpes (84); members of the Rhône one."""
    def cpts(cpts_id, name, departement, stage, population, size_band):
        return r.CptsRegistered(cpts_id=cpts_id, name=name, stage=stage, communes=[f"{departement}001"],
                                population=population, size_band=size_band, departements=[departement])

    events = [
        kit.at(cpts(RHONE, "CPTS de l'Est lyonnais", "69", "aci_signed", 62000, 2), kit.paris("2026-01-05T10:00")),
        kit.at(cpts(AIN, "CPTS du Bugey", "01", "letter_of_intent", 45000, 2), kit.paris("2026-01-06T10:00")),
        kit.at(cpts(ISERE, "CPTS Grésivaudan", "38", "letter_of_intent", 90000, 3), kit.paris("2026-01-07T10:00")),
        kit.at(cpts(PARIS, "CPTS Paris 13", "75", "aci_signed", 120000, 3), kit.paris("2026-01-08T10:00")),
        kit.at(r.CptsStageChanged(cpts_id=AIN, stage="health_project_validated"), kit.paris("2026-02-01T10:00")),
        kit.at(r.CptsStageChanged(cpts_id=ISERE, stage="aci_signed"), kit.paris("2026-03-01T10:00")),
        kit.at(r.CptsTerritoryChanged(cpts_id=ISERE, communes=["38001", "38002"], population=95000, size_band=3,
                                      departements=["38"]), kit.paris("2026-03-02T10:00")),
    ]
    registered = [kit.at(r.ProfessionalRegistered(
        idnps=kit.gp(n), family_name=f"Nom{n}", given_name="Prénom", profession_code="10", specialty_code="SM54",
        cpts_ids=[RHONE]), kit.paris("2026-01-10T09:00")) for n in (1, 2, 3)]
    changes = [kit.at(r.MembershipChanged(idnps=kit.gp(1), cpts_id=RHONE, status="active"),
                      kit.paris("2026-02-01T09:00")),
               kit.at(r.MembershipChanged(idnps=kit.gp(3), cpts_id=RHONE, status="left"),
                      kit.paris("2026-02-02T09:00"))]
    await kit.apply(database, events + registered + changes)
    async with database.transaction() as session:  # what the `indicators.registry` consumer does
        await on_professionals_registered(session, registered)
        await on_memberships_changed(session, changes)


async def test_every_cpts_of_the_region_with_the_share_covered_by_an_operating_one(database, kit):
    await registry_history(database, kit)
    async with database.sessions() as session:
        cpts = await registry_cpts(session)
    from datetime import UTC, datetime

    view = regional_view("84", cpts, now=datetime.now(UTC))
    population = region_population("84")
    assert view.region_name == departements()["69"].region_name and "38" in view.departements
    assert view.population == population > 7_000_000
    rows = {c.cpts_id: c for c in view.cpts}
    assert set(rows) == {RHONE, AIN, ISERE}  # not the Paris one
    assert (rows[RHONE].stage, rows[RHONE].operating, rows[RHONE].members, rows[RHONE].active_members) == \
        ("aci_signed", True, 2, 1)
    assert (rows[AIN].stage, rows[AIN].operating, rows[AIN].population) == \
        ("health_project_validated", False, 45000)
    assert (rows[ISERE].stage, rows[ISERE].operating, rows[ISERE].population, rows[ISERE].size_band) == \
        ("aci_signed", True, 95000, 3)
    assert view.population_covered == 62000 + 95000
    assert view.covered_share == round(100 * (62000 + 95000) / population, 1)
    assert [c.name for c in view.cpts] == ["CPTS de l'Est lyonnais", "CPTS du Bugey", "CPTS Grésivaudan"]


async def test_the_regional_view_is_for_the_ars_of_the_region_and_admins(
        database, database_url, kafka_broker, topic_prefix, tmp_path, kit):
    await registry_history(database, kit)
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")

    def bearer(role: str, **scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.mint(subject=f'{role}-user', roles=[role], **scope)}"}

    async with running_service(service, settings) as client:
        body = (await client.get("/indicators/regions/84", headers=bearer("ars", departements=["69", "38"]))).json()
        status = {}
        for name, url, headers in [
            ("ars of a département of the région", "/indicators/regions/84", bearer("ars", departements=["01"])),
            ("ars of another région", "/indicators/regions/84", bearer("ars", departements=["75"])),
            ("admin", "/indicators/regions/11", bearer("admin")),
            ("coordinator", "/indicators/regions/84", bearer("coordinator", cpts_ids=[RHONE])),
            ("unknown région", "/indicators/regions/99", bearer("admin")),
            ("malformed région", "/indicators/regions/8A", bearer("admin")),
            ("no token", "/indicators/regions/84", {}),
        ]:
            status[name] = (await client.get(url, headers=headers)).status_code
    assert [c["cpts_id"] for c in body["cpts"]] == [RHONE, AIN, ISERE]
    assert body["population_covered"] == 157000 and body["covered_share"] > 0
    assert body["cpts"][0] == {"cpts_id": RHONE, "name": "CPTS de l'Est lyonnais", "stage": "aci_signed",
                               "operating": True, "size_band": 2, "population": 62000, "departements": ["69"],
                               "members": 2, "active_members": 1}
    assert status == {"ars of a département of the région": 200, "ars of another région": 403, "admin": 200,
                      "coordinator": 403, "unknown région": 404, "malformed région": 422, "no token": 401}
