"""Registry rows as FHIR R4 resources (`fhir.resources` R4B models, so each one is validated when built).

The shapes follow the SAS implementation guide (ans.fhir.fr.sas 1.2.0) and its example instances
(shared/reference/sas-ig-examples): an effecteur is a `FrPractitionerAgregateur`, each of their practice
sites a `FrPractitionerRoleExerciceAgregateur` with its site as a contained `FrLocationAgregateur`, a CPTS a
`sas-cpts-organization-aggregator` offering a `sas-cpts-healthcareservice-aggregator`.

Where the guide's profiles are stricter than a wish, the profile wins (details in each function):
- a Practitioner carries only its IDNPS identifier: the profile fixes `identifier.type` to IDNPS for every
  identifier, and an IDNPS is never taken apart (DOMAIN.md), so no RPPS identifier is derived from it;
- a CPTS Organization carries only its IDNST (`1` + FINESS): the profile allows exactly one identifier. Its
  FHIR id is the FINESS number itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.resource import Resource

from cpts_geo import communes
from cpts_registry.repository import CptsRow, PracticeSiteRow, ProfessionalRow

FHIR_JSON = "application/fhir+json"

# Identifier systems (ANS).
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
# The platform's own namespace for the practice-site ids it holds (an RPPS technical id or an IDNST), in the
# role the SAS examples give an editor's system (`https://editeur.com`) on an INTRN location identifier.
PRACTICE_SITE_SYSTEM = "urn:cpts-platform:registry:practice-site"

# Identifier type code systems, each as the SAS profile of that resource fixes it: the PS-indiv profiles
# (Practitioner, PractitionerRole.organization) use InteropSanté's, the CPTS Organization profile FR Core's.
V2_0203_INTEROPSANTE = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
V2_0203_FR_CORE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
LOCATION_IDENTIFIER_TYPE = "http://interopsante.org/fhir/CodeSystem/fr-location-identifier-type"

# Terminologies (NOS, ANS).
TRE_G15_PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
TRE_R38_SPECIALITE = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
TRE_R66_CATEGORIE = ("https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/"
                     "TRE-R66-CategorieEtablissement")
TRE_R13_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
CPTS_CATEGORY = "604"
CPTS_CATEGORY_DISPLAY = "Communauté Professionnelle Territoriale de Santé (CPTS)"
# Address extension named by the SAS Location profile (`Location.address.extension:inseeCode`).
INSEE_CODE_EXTENSION = "http://interopsante.org/fhir/StructureDefinition/FrAddressInseeCode"
LOCATION_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"

# Profiles the SAS example instances claim.
PRACTITIONER_PROFILE = "http://sas.fr/fhir/StructureDefinition/FrPractitionerAgregateur"
PRACTITIONER_ROLE_PROFILE = "http://sas.fr/fhir/StructureDefinition/FrPractitionerRoleExerciceAgregateur"
LOCATION_PROFILE = "http://sas.fr/fhir/StructureDefinition/FrLocationAgregateur"
ORGANIZATION_PROFILE = "https://interop.esante.gouv.fr/ig/fhir/sas/StructureDefinition/sas-cpts-organization-aggregator"
HEALTHCARE_SERVICE_PROFILE = ("https://interop.esante.gouv.fr/ig/fhir/sas/StructureDefinition/"
                              "sas-cpts-healthcareservice-aggregator")

HEALTHCARE_SERVICE_PREFIX = "cpts-"
# IDNST = "1" + FINESS, "3" + SIRET, "4" + RPPS rang, "0" + ADELI rang (ANS, DOMAIN.md).
_IDNST = re.compile(r"^(1\d{2}[0-9AB]\d{6}|3\d{14}|4\d{11,13}|0[0-9A-Z]{9,11})$")
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9\-.]")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_id(text: str) -> str:
    """`text` as a FHIR id: characters outside [A-Za-z0-9-.] become `-`, at most 64 characters."""
    return _NOT_ID_CHAR.sub("-", text)[:64] or "-"


def practitioner_role_id(idnps: str, site_id: str) -> str:
    """`{idnps}-{site_id}` made id-safe. An IDNPS has no `-`, so the first `-` separates the two parts."""
    return fhir_id(f"{idnps}-{site_id}")


def healthcare_service_id(cpts_id: str) -> str:
    return f"{HEALTHCARE_SERVICE_PREFIX}{cpts_id}"


def idnst_of_finess(finess: str) -> str:
    return f"1{finess}"


def commune_name(insee: str | None) -> str | None:
    if not insee:
        return None
    commune = communes().get(insee)
    return commune.name if commune else None


def _idnps_identifier(idnps: str) -> dict[str, Any]:
    return {"type": {"coding": [{"system": V2_0203_INTEROPSANTE, "code": "IDNPS"}]},
            "system": IDNPS_SYSTEM, "value": idnps}


def _coding(system: str, code: str, display: str | None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def practitioner(row: ProfessionalRow) -> Practitioner:
    """A professional as a `FrPractitionerAgregateur`: id and identifier are the IDNPS; name with the civility
    as prefix; the profession (TRE_G15) and ordinal specialty (TRE_R38) as two qualifications."""
    name: dict[str, Any] = {"family": row.family_name, "given": [row.given_name]}
    if row.civility:
        name["prefix"] = [row.civility]
    qualifications = [{"code": {"coding": [_coding(TRE_G15_PROFESSION, row.profession_code, row.profession_label)]}}]
    if row.specialty_code:
        qualifications.append(
            {"code": {"coding": [_coding(TRE_R38_SPECIALITE, row.specialty_code, row.specialty_label)]}})
    return Practitioner(
        id=row.idnps,
        meta={"profile": [PRACTITIONER_PROFILE]},
        identifier=[_idnps_identifier(row.idnps)],
        active=row.active,
        name=[name],
        qualification=qualifications,
    )


def _address(*, line: str | None, postcode: str | None, insee: str | None) -> dict[str, Any] | None:
    address: dict[str, Any] = {}
    if insee:
        address["extension"] = [{"url": INSEE_CODE_EXTENSION,
                                 "valueCoding": _coding(TRE_R13_COMMUNE, insee, None)}]
    if line:
        address["line"] = [line]
    city = commune_name(insee)
    if city:
        address["city"] = city
    if postcode:
        address["postalCode"] = postcode
    return address or None


def site_location(site: PracticeSiteRow, *, contained_id: str) -> Location:
    """A practice site as a `FrLocationAgregateur` (contained in a PractitionerRole): INTRN identifier in the
    platform's site namespace, name, address (line, city from the INSEE code, postcode, INSEE code extension),
    phone and WGS84 position."""
    location: dict[str, Any] = {
        "id": contained_id,
        "meta": {"profile": [LOCATION_PROFILE]},
        "identifier": [{"type": {"coding": [{"system": LOCATION_IDENTIFIER_TYPE, "code": "INTRN"}]},
                        "system": PRACTICE_SITE_SYSTEM, "value": site.site_id}],
    }
    if site.name:
        location["name"] = site.name
    if site.phone:
        location["telecom"] = [{"system": "phone", "value": site.phone}]
    address = _address(line=site.address, postcode=site.postcode, insee=site.commune_insee)
    if address:
        location["address"] = address
    if site.lat is not None and site.lon is not None:
        location["position"] = {"latitude": site.lat, "longitude": site.lon}
    return Location(**location)


def practitioner_role(professional: ProfessionalRow, site: PracticeSiteRow) -> PractitionerRole:
    """One activity (a professional at a site) as a `FrPractitionerRoleExerciceAgregateur`: the practitioner by
    reference and IDNPS, the site as the contained location, and the site as organization (by IDNST, as in
    the SAS examples) when the site id is an IDNST."""
    contained_id = f"site-{fhir_id(site.site_id)}"[:64]
    role: dict[str, Any] = {
        "id": practitioner_role_id(professional.idnps, site.site_id),
        "meta": {"profile": [PRACTITIONER_ROLE_PROFILE]},
        "contained": [site_location(site, contained_id=contained_id)],
        "active": professional.active,
        "practitioner": {"reference": f"Practitioner/{professional.idnps}",
                         "identifier": _idnps_identifier(professional.idnps),
                         "display": f"{professional.given_name} {professional.family_name}"},
        "location": [{"reference": f"#{contained_id}"}],
    }
    if _IDNST.match(site.site_id):
        role["organization"] = {"identifier": {
            "type": {"coding": [{"system": V2_0203_INTEROPSANTE, "code": "IDNST"}]},
            "system": IDNST_SYSTEM, "value": site.site_id}}
    if site.phone:
        role["telecom"] = [{"system": "phone", "value": site.phone}]
    return PractitionerRole(**role)


def _idnst_identifier(finess: str) -> dict[str, Any]:
    return {"type": {"coding": [{"system": V2_0203_FR_CORE, "code": "IDNST"}]},
            "system": IDNST_SYSTEM, "value": idnst_of_finess(finess)}


def organization(cpts: CptsRow) -> Organization:
    """A CPTS as a `sas-cpts-organization-aggregator`: id = FINESS, its single identifier the IDNST
    (`1` + FINESS), type 604 of TRE_R66 (the SAS value set of establishment categories), name."""
    return Organization(
        id=cpts.cpts_id,
        meta={"profile": [ORGANIZATION_PROFILE]},
        identifier=[_idnst_identifier(cpts.cpts_id)],
        type=[{"coding": [_coding(TRE_R66_CATEGORIE, CPTS_CATEGORY, CPTS_CATEGORY_DISPLAY)]}],
        name=cpts.name,
    )


def _commune_location(insee: str) -> Location:
    name = commune_name(insee)
    location: dict[str, Any] = {
        "id": f"commune-{insee}",
        "physicalType": {"coding": [{"system": LOCATION_PHYSICAL_TYPE, "code": "jdn", "display": "Jurisdiction"}]},
        "address": _address(line=None, postcode=None, insee=insee),
    }
    if name:
        location["name"] = name
    return Location(**location)


def healthcare_service(cpts: CptsRow, commune_codes: Iterable[str]) -> HealthcareService:
    """The service a CPTS offers, as a `sas-cpts-healthcareservice-aggregator` provided by its Organization; the
    territory's communes are its `coverageArea`, as contained jurisdiction Locations (INSEE code, name)."""
    codes = sorted(set(commune_codes))
    service: dict[str, Any] = {
        "id": healthcare_service_id(cpts.cpts_id),
        "meta": {"profile": [HEALTHCARE_SERVICE_PROFILE]},
        "active": True,
        "providedBy": {"reference": f"Organization/{cpts.cpts_id}", "display": cpts.name},
        "name": cpts.name,
    }
    if codes:
        service["contained"] = [_commune_location(code) for code in codes]
        service["coverageArea"] = [{"reference": f"#commune-{code}"} for code in codes]
    return HealthcareService(**service)


def searchset(*, base_url: str, resources: Sequence[Resource], total: int, links: dict[str, str],
              included: Sequence[Resource] = ()) -> Bundle:
    """A searchset Bundle: `resources` as matches, `included` as includes, `links` by relation."""
    entries = [{"fullUrl": f"{base_url}/{r.get_resource_type()}/{r.id}", "resource": r,
                "search": {"mode": "match"}} for r in resources]
    entries += [{"fullUrl": f"{base_url}/{r.get_resource_type()}/{r.id}", "resource": r,
                 "search": {"mode": "include"}} for r in included]
    return Bundle(type="searchset", total=total,
                  link=[{"relation": relation, "url": url} for relation, url in links.items()],
                  entry=entries or None)


def operation_outcome(code: str, diagnostics: str, *, severity: str = "error") -> OperationOutcome:
    return OperationOutcome(issue=[{"severity": severity, "code": code, "diagnostics": diagnostics}])


def to_json(resource: Resource) -> dict[str, Any]:
    return resource.model_dump(mode="json", exclude_none=True)
