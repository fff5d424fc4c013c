"""Contract with the SAS implementation guide (ans.fhir.fr.sas 1.2.0): our FHIR resources use the identifier
systems, identifier types and profiles of the guide's official examples, and meet the cardinalities and
patterns that the guide's own profiles add (their differential; FR Core, on which they build, is not shipped
with the package, so its constraints are not checked here)."""

from __future__ import annotations

import json
import tarfile
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cpts_registry import fhir_mapping as fm
from cpts_registry.repository import CptsRow, PracticeSiteRow, ProfessionalRow

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "reference"  # the repository's copy
EXAMPLES = REFERENCE / "sas-ig-examples"
SAS_PACKAGE = REFERENCE / "fhir-packages" / "ans.fhir.fr.sas-1.2.0.tgz"
NOW = datetime(2026, 1, 5, tzinfo=timezone.utc)

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"SAS examples not found at {EXAMPLES}")


@cache
def examples() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(EXAMPLES.glob("*.json"))]


def examples_with_profile(profile: str) -> list[dict[str, Any]]:
    return [e for e in examples() if profile in e.get("meta", {}).get("profile", [])]


def profiles_of(resource_type: str) -> set[str]:
    return {p for e in examples() if e["resourceType"] == resource_type for p in e.get("meta", {}).get("profile", [])}


def identifier_shapes(identifiers: list[dict[str, Any]]) -> set[tuple[str | None, str | None, str | None]]:
    """(system, type coding system, type code) of each identifier."""
    shapes = set()
    for identifier in identifiers:
        codings = identifier.get("type", {}).get("coding", [{}])
        shapes |= {(identifier.get("system"), c.get("system"), c.get("code")) for c in codings}
    return shapes


# --- our resources, from rows built in memory ----------------------------------------------------------------

PROFESSIONAL = ProfessionalRow(idnps="810100000011", civility="Dr", family_name="Morel", given_name="Camille",
                               profession_code="10", profession_label="Médecin", specialty_code="SM54",
                               specialty_label="Médecine générale (SM)", registered_at=NOW)
SITE = PracticeSiteRow(site_id="1690000111", name="Maison de santé des Minguettes", address="12 avenue Jean Cagne",
                       postcode="69200", commune_insee="69259", phone="+33478000000", lat=45.7042, lon=4.8812)
CPTS = CptsRow(cpts_id="690049999", name="CPTS Lyon Sud-Est", stage="aci_signed", registered_at=NOW)


def ours() -> dict[str, dict[str, Any]]:
    return {
        "Practitioner": fm.to_json(fm.practitioner(PROFESSIONAL)),
        "PractitionerRole": fm.to_json(fm.practitioner_role(PROFESSIONAL, SITE)),
        "Organization": fm.to_json(fm.organization(CPTS)),
        "HealthcareService": fm.to_json(fm.healthcare_service(CPTS, ["69259", "69290"])),
    }


@pytest.mark.parametrize("resource_type", ["Practitioner", "PractitionerRole", "Organization", "HealthcareService"])
def test_our_resources_claim_a_profile_of_the_official_examples(resource_type):
    resource = ours()[resource_type]
    assert resource["meta"]["profile"], resource_type
    assert set(resource["meta"]["profile"]) <= profiles_of(resource_type)
    get_fhir_model_class(resource_type).model_validate(resource)


def test_practitioner_identifiers_are_those_of_the_examples():
    ours_ = ours()["Practitioner"]
    [profile] = ours_["meta"]["profile"]
    theirs = set().union(*(identifier_shapes(e["identifier"]) for e in examples_with_profile(profile)))
    assert identifier_shapes(ours_["identifier"]) == theirs == {
        ("urn:oid:1.2.250.1.71.4.2.1", "http://interopsante.org/fhir/CodeSystem/fr-v2-0203", "IDNPS")}


def test_cpts_organization_identifiers_are_those_of_the_examples():
    ours_ = ours()["Organization"]
    [profile] = ours_["meta"]["profile"]
    cpts_examples = examples_with_profile(profile)
    assert {e["id"] for e in cpts_examples} == {"ExampleOrgaCPTS1", "ExampleOrgaCPTS2"}
    theirs = set().union(*(identifier_shapes(e["identifier"]) for e in cpts_examples))
    assert identifier_shapes(ours_["identifier"]) == theirs == {
        ("urn:oid:1.2.250.1.71.4.2.2", "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "IDNST")}
    # The examples' IDNST values are "1" + a FINESS number, as ours is.
    assert all(len(e["identifier"][0]["value"]) == 10 and e["identifier"][0]["value"].startswith("1")
               for e in cpts_examples)
    assert ours_["identifier"][0]["value"] == "1" + CPTS.cpts_id


def test_practitioner_role_references_are_shaped_like_the_examples():
    ours_ = ours()["PractitionerRole"]
    [profile] = ours_["meta"]["profile"]
    theirs = examples_with_profile(profile)
    their_orgs = {s for e in theirs if "type" in e["organization"].get("identifier", {})
                  for s in identifier_shapes([e["organization"]["identifier"]])}
    assert identifier_shapes([ours_["organization"]["identifier"]]) == their_orgs
    assert all(e["practitioner"]["reference"].startswith("Practitioner/") for e in theirs)
    assert ours_["practitioner"]["reference"] == f"Practitioner/{PROFESSIONAL.idnps}"
    # The site: a contained location with the examples' profile and identifier type, referenced by #id.
    their_locations = [c for e in theirs for c in e["contained"]]
    [location] = ours_["contained"]
    assert set(location["meta"]["profile"]) <= {p for c in their_locations for p in c["meta"]["profile"]}
    their_types = {(c.get("system"), c.get("code")) for loc in their_locations for i in loc["identifier"]
                   for c in i["type"]["coding"]}
    assert {(c["system"], c["code"]) for i in location["identifier"] for c in i["type"]["coding"]} <= their_types
    assert ours_["location"] == [{"reference": f"#{location['id']}"}]
    assert set(location["address"]) >= {key for c in their_locations for key in c["address"]}


def test_healthcare_service_is_provided_by_the_cpts_organization_as_in_the_examples():
    service, organization = ours()["HealthcareService"], ours()["Organization"]
    [profile] = service["meta"]["profile"]
    for example in examples_with_profile(profile):
        provider = example["providedBy"]["reference"]
        assert provider.startswith("Organization/")
        referenced = next(e for e in examples() if f"Organization/{e['id']}" == provider)
        assert referenced["meta"]["profile"] == organization["meta"]["profile"]
    assert service["providedBy"]["reference"] == f"Organization/{organization['id']}"


# --- the profiles' own constraints ---------------------------------------------------------------------------

@cache
def structure_definitions() -> dict[str, dict[str, Any]]:
    definitions = {}
    with tarfile.open(SAS_PACKAGE) as package:
        for member in package.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.name.count("/") == 1 and name.startswith("StructureDefinition-") and name.endswith(".json"):
                definition = json.load(package.extractfile(member))
                definitions[definition["url"]] = definition
    return definitions


def _children(node: Any, name: str) -> list[Any]:
    value = node.get(name) if isinstance(node, dict) else None
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _nodes(resource: dict[str, Any], path: str) -> list[Any]:
    nodes = [resource]
    for name in path.split(".")[1:]:
        nodes = [child for node in nodes for child in _children(node, name)]
    return nodes


def profile_violations(resource: dict[str, Any], definition: dict[str, Any]) -> list[str]:
    """Cardinalities and CodeableConcept patterns of the profile's differential (slices and choice types are
    left out): a minimal check, not a validator."""
    problems = []
    for element in definition["differential"]["element"]:
        path = element["path"]
        if ":" in element["id"] or "[x]" in path or "." not in path:
            continue
        parent, name = path.rsplit(".", 1)
        for node in _nodes(resource, parent):
            count = len(_children(node, name))
            if count < element.get("min", 0):
                problems.append(f"{path}: at least {element['min']}, found {count}")
            if element.get("max", "*") != "*" and count > int(element["max"]):
                problems.append(f"{path}: at most {element['max']}, found {count}")
        pattern = element.get("patternCodeableConcept")
        if pattern:
            for value in _nodes(resource, path):
                codings = {(c.get("system"), c.get("code")) for c in value.get("coding", [])}
                if not {(c.get("system"), c.get("code")) for c in pattern["coding"]} <= codings:
                    problems.append(f"{path}: does not carry the pattern {pattern['coding']}")
    return problems


def profiled(resource: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The resource and its contained resources, each with a profile it claims."""
    found = [(p, resource) for p in resource.get("meta", {}).get("profile", [])]
    for contained in resource.get("contained", []):
        found += profiled(contained)
    return found


needs_package = pytest.mark.skipif(not SAS_PACKAGE.is_file(), reason=f"SAS package not found at {SAS_PACKAGE}")


@needs_package
def test_the_profile_check_accepts_the_official_examples():
    checked = 0
    for example in examples():
        for profile, resource in profiled(example):
            if profile in structure_definitions():
                assert profile_violations(resource, structure_definitions()[profile]) == [], example["id"]
                checked += 1
    assert checked >= 30


@needs_package
@pytest.mark.parametrize("resource_type", ["Practitioner", "PractitionerRole", "Organization", "HealthcareService"])
def test_our_resources_meet_the_sas_profiles(resource_type):
    claims = profiled(ours()[resource_type])
    assert claims
    for profile, resource in claims:
        assert profile in structure_definitions(), profile
        assert profile_violations(resource, structure_definitions()[profile]) == [], profile


@needs_package
def test_the_profile_check_catches_a_second_identifier():
    """What the profiles forbid, and why our Practitioner has no RPPS and our Organization no FINESS identifier."""
    practitioner = ours()["Practitioner"]
    practitioner["identifier"].append({"type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/"
                                                                       "fr-core-cs-v2-0203", "code": "RPPS"}]},
                                       "system": "https://rpps.esante.gouv.fr", "value": "10100000011"})
    organization = ours()["Organization"]
    organization["identifier"].append({"system": "http://finess.sante.gouv.fr", "value": CPTS.cpts_id})
    assert profile_violations(practitioner, structure_definitions()[fm.PRACTITIONER_PROFILE])
    assert profile_violations(organization, structure_definitions()[fm.ORGANIZATION_PROFILE])
