"""FHIR read and search of the registry (`/fhir`), on rows written straight into a migrated database."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import running_service, settings_for
from cpts_registry import fhir_mapping as fm
from cpts_registry.app import service
from cpts_registry.repository import (
    ActivityRow, CptsCommuneRow, CptsRow, MembershipRow, PracticeSiteRow, ProfessionalRow,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
CPTS = "690049999"
MOREL = "810100000011"
OTHER_CPTS = "690050006"
SITE_IDNST = "1690000111"  # an IDNST (1 + FINESS): the site is also the role's organization
SITE_TECH = "R/690 0012"  # an RPPS technical id with characters a FHIR id cannot hold
FHIR_JSON = "application/fhir+json"


def auth(tmp_path, *roles: str) -> dict[str, str]:
    token = LocalIssuer(tmp_path / "var" / "local-issuer").mint(subject="t", roles=list(roles))
    return {"Authorization": f"Bearer {token}"}


def professional(idnps: str, family: str, given: str, **fields) -> ProfessionalRow:
    values = dict(civility="Dr", profession_code="10", profession_label="Médecin", specialty_code="SM54",
                  specialty_label="Médecine générale (SM)", commune_insee="69259", registered_at=NOW)
    values.update(fields)
    return ProfessionalRow(idnps=idnps, family_name=family, given_name=given, **values)


async def seed(client) -> None:
    async with client.app.state.runtime.database.transaction() as session:
        session.add_all([
            professional(MOREL, "Morel", "Camille"),
            professional("810100000022", "Martin", "Léa", civility=None, specialty_code=None,
                         specialty_label=None),
            professional("810100000033", "Bernard", "Hugo", profession_code="60", profession_label="Infirmier",
                         specialty_code=None, specialty_label=None, active=False),
            professional("810100000044", "Petit", "Inès"),
            professional("0691234567", "Durand", "Paul", profession_code="40", profession_label="Chirurgien-Dentiste",
                         specialty_code=None, specialty_label=None),
            PracticeSiteRow(site_id=SITE_IDNST, name="Maison de santé des Minguettes",
                            address="12 avenue Jean Cagne", postcode="69200", commune_insee="69259",
                            phone="+33478000000", lat=45.7042, lon=4.8812),
            PracticeSiteRow(site_id=SITE_TECH, name="Cabinet Morel", address="3 rue de la Paix",
                            postcode="69200", commune_insee="69259"),
            CptsRow(cpts_id=CPTS, name="CPTS Lyon Sud-Est", stage="aci_signed", missions=["1a-medecin-traitant"],
                    population=90000, size_band=3, departements=["69"], registered_at=NOW),
            CptsRow(cpts_id=OTHER_CPTS, name="CPTS Val de Saône", stage="letter_of_intent", registered_at=NOW),
        ])
        await session.flush()
        session.add_all([
            ActivityRow(idnps=MOREL, site_id=SITE_IDNST, practice_mode="L"),
            ActivityRow(idnps=MOREL, site_id=SITE_TECH, practice_mode="L"),
            ActivityRow(idnps="810100000022", site_id=SITE_IDNST, practice_mode="L"),
            CptsCommuneRow(commune_insee="69259", cpts_id=CPTS),
            CptsCommuneRow(commune_insee="69290", cpts_id=CPTS),
            MembershipRow(cpts_id=CPTS, idnps=MOREL, status="active", since=NOW),
        ])


@pytest.fixture
async def fhir(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        await seed(client)
        client.headers.update(auth(tmp_path, "regulator"))
        yield client


def parsed(response, status: int = 200) -> dict:
    """The FHIR body of `response`, checked: status, media type, and every resource valid for its R4B model."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    for entry in body.get("entry", []):
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    return body


def resources(bundle: dict, mode: str = "match") -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def link(bundle: dict, relation: str) -> str | None:
    return next((item["url"] for item in bundle.get("link", []) if item["relation"] == relation), None)


async def test_a_practitioner_is_read_by_idnps(fhir):
    body = parsed(await fhir.get(f"/fhir/Practitioner/{MOREL}"))
    assert body["id"] == MOREL
    assert body["meta"]["profile"] == [fm.PRACTITIONER_PROFILE]
    assert body["identifier"] == [{
        "type": {"coding": [{"system": "http://interopsante.org/fhir/CodeSystem/fr-v2-0203", "code": "IDNPS"}]},
        "system": "urn:oid:1.2.250.1.71.4.2.1", "value": MOREL}]
    assert body["name"] == [{"family": "Morel", "given": ["Camille"], "prefix": ["Dr"]}]
    assert body["active"] is True
    codings = [q["code"]["coding"][0] for q in body["qualification"]]
    assert {"system": fm.TRE_G15_PROFESSION, "code": "10", "display": "Médecin"} in codings
    assert {"system": fm.TRE_R38_SPECIALITE, "code": "SM54", "display": "Médecine générale (SM)"} in codings


async def test_practitioners_are_searched_by_identifier_with_or_without_system(fhir):
    with_system = parsed(await fhir.get("/fhir/Practitioner",
                                        params={"identifier": f"urn:oid:1.2.250.1.71.4.2.1|{MOREL}"}))
    without_system = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": MOREL}))
    adeli = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": "0691234567"}))
    either = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": f"{MOREL},810100000022"}))
    other_system = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": f"urn:oid:1.2.3|{MOREL}"}))
    no_system = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": f"|{MOREL}"}))
    unknown = parsed(await fhir.get("/fhir/Practitioner", params={"identifier": "810199999999"}))
    by_name = parsed(await fhir.get("/fhir/Practitioner", params={"name": "mor"}))
    for bundle in (with_system, without_system):
        assert bundle["type"] == "searchset"
        assert bundle["total"] == 1
        assert [r["id"] for r in resources(bundle)] == [MOREL]
        assert bundle["entry"][0]["fullUrl"] == f"http://service/fhir/Practitioner/{MOREL}"
    assert [r["id"] for r in resources(adeli)] == ["0691234567"]
    assert [r["id"] for r in resources(either)] == [MOREL, "810100000022"]
    assert other_system["total"] == no_system["total"] == unknown["total"] == 0
    assert "entry" not in unknown
    assert [r["id"] for r in resources(by_name)] == [MOREL]


async def test_practitioner_search_can_include_the_practitioner_roles(fhir):
    bundle = parsed(await fhir.get("/fhir/Practitioner", params={
        "identifier": MOREL, "_revinclude": "PractitionerRole:practitioner"}))
    assert [r["id"] for r in resources(bundle)] == [MOREL]
    assert {r["id"] for r in resources(bundle, "include")} == {
        f"{MOREL}-{SITE_IDNST}", f"{MOREL}-R-690-0012"}
    assert bundle["total"] == 1


async def test_practitioner_roles_are_searched_by_practitioner_identifier(fhir):
    bundle = parsed(await fhir.get("/fhir/PractitionerRole", params={
        "practitioner.identifier": f"urn:oid:1.2.250.1.71.4.2.1|{MOREL}"}))
    by_reference = parsed(await fhir.get("/fhir/PractitionerRole", params={"practitioner": f"Practitioner/{MOREL}"}))
    everything = parsed(await fhir.get("/fhir/PractitionerRole"))
    roles = {r["id"]: r for r in resources(bundle)}
    assert set(roles) == {f"{MOREL}-{SITE_IDNST}", f"{MOREL}-R-690-0012"}
    assert bundle["total"] == 2
    assert {r["id"] for r in resources(by_reference)} == set(roles)
    assert everything["total"] == 3

    role = roles[f"{MOREL}-{SITE_IDNST}"]
    assert role["meta"]["profile"] == [fm.PRACTITIONER_ROLE_PROFILE]
    assert role["practitioner"]["reference"] == f"Practitioner/{MOREL}"
    assert role["practitioner"]["identifier"]["value"] == MOREL
    assert role["organization"]["identifier"]["system"] == "urn:oid:1.2.250.1.71.4.2.2"
    assert role["organization"]["identifier"]["value"] == SITE_IDNST
    [location] = role["contained"]
    assert role["location"] == [{"reference": f"#{location['id']}"}]
    assert location["name"] == "Maison de santé des Minguettes"
    assert location["address"]["line"] == ["12 avenue Jean Cagne"]
    assert location["address"]["city"] == "Vénissieux"
    assert location["address"]["postalCode"] == "69200"
    assert location["address"]["extension"][0]["valueCoding"]["code"] == "69259"
    assert location["position"] == {"latitude": 45.7042, "longitude": 4.8812}
    assert "organization" not in roles[f"{MOREL}-R-690-0012"]  # a technical id is not an IDNST

    read = parsed(await fhir.get(f"/fhir/PractitionerRole/{MOREL}-R-690-0012"))
    assert read["contained"][0]["identifier"][0]["value"] == SITE_TECH


async def test_a_cpts_is_an_organization_with_its_idnst_and_category_604(fhir):
    body = parsed(await fhir.get(f"/fhir/Organization/{CPTS}"))
    by_idnst = parsed(await fhir.get("/fhir/Organization", params={"identifier": f"urn:oid:1.2.250.1.71.4.2.2|1{CPTS}"}))
    bare = parsed(await fhir.get("/fhir/Organization", params={"identifier": f"1{CPTS}"}))
    all_cpts = parsed(await fhir.get("/fhir/Organization"))
    assert body["id"] == CPTS
    assert body["name"] == "CPTS Lyon Sud-Est"
    assert body["meta"]["profile"] == [fm.ORGANIZATION_PROFILE]
    assert body["identifier"] == [{
        "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "code": "IDNST"}]},
        "system": "urn:oid:1.2.250.1.71.4.2.2", "value": f"1{CPTS}"}]
    assert body["type"][0]["coding"][0]["system"].endswith("TRE-R66-CategorieEtablissement")
    assert body["type"][0]["coding"][0]["code"] == "604"
    assert [r["id"] for r in resources(by_idnst)] == [r["id"] for r in resources(bare)] == [CPTS]
    assert [r["id"] for r in resources(all_cpts)] == [CPTS, OTHER_CPTS]


async def test_the_healthcare_service_of_a_cpts_covers_its_communes(fhir):
    body = parsed(await fhir.get(f"/fhir/HealthcareService/cpts-{CPTS}"))
    by_identifier = parsed(await fhir.get("/fhir/HealthcareService", params={
        "organization.identifier": f"urn:oid:1.2.250.1.71.4.2.2|1{CPTS}"}))
    by_reference = parsed(await fhir.get("/fhir/HealthcareService", params={"organization": f"Organization/{CPTS}"}))
    everything = parsed(await fhir.get("/fhir/HealthcareService"))
    assert body["providedBy"]["reference"] == f"Organization/{CPTS}"
    assert body["name"] == "CPTS Lyon Sud-Est"
    assert body["meta"]["profile"] == [fm.HEALTHCARE_SERVICE_PROFILE]
    contained = {c["id"]: c for c in body["contained"]}
    assert [a["reference"] for a in body["coverageArea"]] == ["#commune-69259", "#commune-69290"]
    assert contained["commune-69259"]["name"] == "Vénissieux"
    assert contained["commune-69290"]["address"]["extension"][0]["valueCoding"]["code"] == "69290"
    assert [r["id"] for r in resources(by_identifier)] == [r["id"] for r in resources(by_reference)] == [
        f"cpts-{CPTS}"]
    other = next(r for r in resources(everything) if r["id"] == f"cpts-{OTHER_CPTS}")
    assert "coverageArea" not in other


async def test_searches_are_paged_with_count_and_next_links(fhir):
    first = parsed(await fhir.get("/fhir/Practitioner", params={"_count": 2}))
    assert first["total"] == 5
    assert [r["id"] for r in resources(first)] == ["0691234567", MOREL]
    assert link(first, "previous") is None
    seen = [r["id"] for r in resources(first)]
    page, pages = first, 1
    while link(page, "next"):
        url = urlsplit(link(page, "next"))
        assert url.path == "/fhir/Practitioner"
        assert parse_qs(url.query)["_count"] == ["2"]
        page = parsed(await fhir.get(f"{url.path}?{url.query}"))
        assert link(page, "previous")
        seen += [r["id"] for r in resources(page)]
        pages += 1
    assert pages == 3
    assert seen == sorted(seen) and len(set(seen)) == 5
    filtered = parsed(await fhir.get("/fhir/Practitioner", params={"name": "M", "_count": 1, "unknown": "x"}))
    assert filtered["total"] == 2  # Morel, Martin
    assert parse_qs(urlsplit(link(filtered, "next")).query) == {"name": ["M"], "_count": ["1"], "_offset": ["1"]}
    capped = parsed(await fhir.get("/fhir/Practitioner", params={"_count": 1000}))
    assert parse_qs(urlsplit(link(capped, "self")).query)["_count"] == ["100"]
    beyond = parsed(await fhir.get("/fhir/Practitioner", params={"_offset": 50}))
    assert beyond["total"] == 5 and "entry" not in beyond


async def test_an_unknown_id_is_a_404_operation_outcome(fhir):
    for path in ("/fhir/Practitioner/810199999999", "/fhir/PractitionerRole/810100000011-nowhere",
                 "/fhir/PractitionerRole/nodash", "/fhir/Organization/000000000",
                 "/fhir/HealthcareService/690049999", "/fhir/HealthcareService/cpts-000000000"):
        body = parsed(await fhir.get(path), 404)
        assert body["resourceType"] == "OperationOutcome", path
        assert body["issue"][0]["code"] == "not-found", path


BAD_SEARCHES = [
    ("/fhir/Practitioner", {"_count": "0"}),
    ("/fhir/Practitioner", {"_count": "many"}),
    ("/fhir/Practitioner", {"_offset": "-1"}),
    ("/fhir/Practitioner", {"identifier": "a|b|c"}),
    ("/fhir/Practitioner", {"identifier": ""}),
    ("/fhir/Practitioner", {"_revinclude": "Appointment:actor"}),
    ("/fhir/PractitionerRole", {"practitioner.identifier": "|"}),
    ("/fhir/PractitionerRole", {"_count": "0"}),
    ("/fhir/Organization", {"_count": "0"}),
    ("/fhir/HealthcareService", {"organization": ""}),
]


async def test_a_bad_search_parameter_is_a_400_operation_outcome(fhir):
    for path, params in BAD_SEARCHES:
        body = parsed(await fhir.get(path, params=params), 400)
        assert body["resourceType"] == "OperationOutcome", (path, params)
        assert body["issue"][0]["severity"] == "error", (path, params)


# A query on the registry's tables (the outbox relay polls its own table meanwhile).
REGISTRY_SELECT = re.compile(r"\s*SELECT\b(?!.*\b(outbox_event|processed_event)\b).*"
                             r"\bFROM\b.*\b(professional|activity|practice_site|cpts|cpts_commune)\b", re.S)


async def test_a_page_costs_a_fixed_number_of_queries(fhir):
    """A count, the page, and one query per kind of related row: never one query per resource."""
    statements: list[str] = []
    engine = fhir.app.state.runtime.database.engine.sync_engine

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        found = {}
        for path, params in [
            ("/fhir/Practitioner", {"_revinclude": "PractitionerRole:practitioner"}),
            ("/fhir/PractitionerRole", {}),
            ("/fhir/HealthcareService", {}),
        ]:
            statements.clear()
            bundle = parsed(await fhir.get(path, params=params))
            found[path] = (len(bundle["entry"]), len([s for s in statements if REGISTRY_SELECT.match(s)]))
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert found == {"/fhir/Practitioner": (5 + 3, 3), "/fhir/PractitionerRole": (3, 2),
                     "/fhir/HealthcareService": (2, 3)}


async def test_reading_needs_a_token_with_a_known_role(fhir, tmp_path):
    anonymous = await fhir.get(f"/fhir/Practitioner/{MOREL}", headers={"Authorization": ""})
    roleless = await fhir.get(f"/fhir/Practitioner/{MOREL}", headers=auth(tmp_path, "visitor"))
    for role in ("secretary", "professional", "coordinator", "ars", "admin"):
        parsed(await fhir.get(f"/fhir/Organization/{CPTS}", headers=auth(tmp_path, role)))
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert roleless.status_code == 403


def test_bundles_validate_with_the_r4b_model():
    """The Bundle builder itself, outside HTTP: entries keep their search mode and full URL."""
    cpts = CptsRow(cpts_id=CPTS, name="CPTS", stage="aci_signed", registered_at=NOW)
    bundle = fm.searchset(base_url="https://x/fhir", resources=[fm.organization(cpts)], total=1,
                          links={"self": "https://x/fhir/Organization"},
                          included=[fm.healthcare_service(cpts, ["69259"])])
    again = Bundle.model_validate(fm.to_json(bundle))
    assert [e.search.mode for e in again.entry] == ["match", "include"]
    assert again.entry[1].fullUrl == f"https://x/fhir/HealthcareService/cpts-{CPTS}"
