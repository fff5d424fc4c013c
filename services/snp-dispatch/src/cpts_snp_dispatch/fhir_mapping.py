"""snp-dispatch rows as FHIR R4 resources, and FHIR requests as the service's commands.

Output follows the SAS implementation guide (ans.fhir.fr.sas 1.2.0) and its example instances
(shared/reference/sas-ig-examples): a searchset Bundle of Slots, each followed by what it brings in first: its
Schedule (one per professional and practice site), the Practitioner and the PractitionerRole (the site as a
contained Location) and, in the CPTS variant, the CPTS's HealthcareService and Organization. Ids are those of
the registry's FHIR API (`cpts_registry.fhir_mapping`), so that references resolve across both services:
Practitioner = IDNPS, PractitionerRole = `{IDNPS}-{site}`, Organization = FINESS, HealthcareService =
`cpts-{FINESS}`.

Resources are built as plain JSON dicts, not fhir.resources models: the models drop the milliseconds of the
instants that the guide's examples carry, and building then dumping one costs about 0.3 ms, more than a
Bundle of a thousand slots can afford in the SAS's 1 s budget. The tests validate every resource built here
with the R4B models. Requests are parsed with the R4B models (`parse_resource`), so a malformed resource is
refused with the element at fault; what the platform derives itself (a slot's specialty, its CPTS references,
its booking URL in `comment`) is not read from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import unquote_plus

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cpts_geo import communes
from cpts_snp_dispatch.domain.slots import PARIS, SlotSpec
from cpts_snp_dispatch.repository import (
    AppointmentRow,
    CptsView,
    ProfessionalView,
    ScheduleRow,
    visibility_codes,
)

FHIR_JSON = "application/fhir+json"

# Identifier systems: ANS national ids, and the platform's own namespaces (the registry's practice-site ids;
# the accounts of the people who book, most of whom, like CPTS secretaries, have no national id).
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
PRACTICE_SITE_SYSTEM = "urn:cpts-platform:registry:practice-site"
ACCOUNT_SYSTEM = "urn:cpts-platform:account"

# Code systems, each as the guide's examples and profiles use it.
V2_0203_INTEROPSANTE = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
V2_0203_FR_CORE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
LOCATION_IDENTIFIER_TYPE = "http://interopsante.org/fhir/CodeSystem/fr-location-identifier-type"
TRE_R314_TYPE_CRENEAU = "https://mos.esante.gouv.fr/NOS/TRE_R314-TypeCreneau/FHIR/TRE-R314-TypeCreneau"
TRE_R38_SPECIALITE = ("https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/"
                      "TRE-R38-SpecialiteOrdinale")
TRE_R66_CATEGORIE = ("https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/"
                     "TRE-R66-CategorieEtablissement")
TRE_R13_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
APPOINTMENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
CANCELLATION_REASON = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
CPTS_CATEGORY = "604"

INSEE_CODE_EXTENSION = "http://interopsante.org/fhir/StructureDefinition/FrAddressInseeCode"
SLOT_SERVICE_TYPE_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Slot.serviceType"
APPOINTMENT_OPERATOR_EXTENSION = "http://interopsante.org/fhir/StructureDefinition/FrAppointmentOperator"

# Profiles, exactly as the example instances claim them (PS indiv under sas.fr, CPTS under interop.esante).
_SAS = "http://sas.fr/fhir/StructureDefinition/"
_SAS_IG = "https://interop.esante.gouv.fr/ig/fhir/sas/StructureDefinition/"
BUNDLE_PROFILE = _SAS + "BundleAgregateur"
SLOT_PROFILE = _SAS + "FrSlotAgregateur"
SCHEDULE_PROFILE = _SAS + "FrScheduleAgregateur"
PRACTITIONER_PROFILE = _SAS + "FrPractitionerAgregateur"
PRACTITIONER_ROLE_PROFILE = _SAS + "FrPractitionerRoleExerciceAgregateur"
LOCATION_PROFILE = _SAS + "FrLocationAgregateur"
APPOINTMENT_PROFILE = _SAS + "FrAppointmentSAS"
CPTS_BUNDLE_PROFILE = _SAS_IG + "sas-cpts-bundle-aggregator"
CPTS_SLOT_PROFILE = _SAS_IG + "sas-cpts-slot-aggregator"
HEALTHCARE_SERVICE_PROFILE = _SAS_IG + "sas-cpts-healthcareservice-aggregator"
ORGANIZATION_PROFILE = _SAS_IG + "sas-cpts-organization-aggregator"

# The aggregator's Slot search (SAS guide): its includes and parameters.
INCLUDE_SCHEDULE = "Slot:schedule"
INCLUDE_ACTORS = "Schedule:actor"
INCLUDE_CPTS = "Slot:service-type-reference"
INCLUDE_ORGANIZATION = "HealthcareService:organization"
INCLUDES = (INCLUDE_SCHEDULE, INCLUDE_ACTORS, INCLUDE_CPTS, INCLUDE_ORGANIZATION)
PRACTITIONER_PARAM = "schedule.actor:Practitioner.identifier"
SLOT_SEARCH_PARAMS = ("_include", "_include:iterate", "start", PRACTITIONER_PARAM, "status", "_count")
MAX_PRACTITIONERS = 25  # the SAS queries practitioners by batches of 25 (DOMAIN.md)
MAX_SLOTS = 1000  # per answer; the SAS's own query asks `_count=1000`

APPOINTMENT_STATUSES = ("booked", "fulfilled", "noshow", "cancelled")
# Our cancellation reasons (REST API, handlers) as codes of FHIR's appointment-cancellation-reason.
_CANCEL_CODES = {"patient": "pat", "professional": "prov", "slot_withdrawn": "prov", "other": "other"}

# IDNST = "1" + FINESS, "3" + SIRET, "4" + RPPS rang, "0" + ADELI rang (ANS, DOMAIN.md); as in the registry.
_IDNST = re.compile(r"^(1\d{2}[0-9AB]\d{6}|3\d{14}|4\d{11,13}|0[0-9A-Z]{9,11})$")
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9\-.]")
_SEARCH_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEARCH_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$")


class FhirError(Exception):
    """A request this FHIR API refuses: answered with `status` and an OperationOutcome naming the element (or
    the search parameter) at fault in `expression`."""

    def __init__(self, status: int, diagnostics: str, *, expression: str | None = None,
                 code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.expression = expression
        self.code = code


def operation_outcome(code: str, diagnostics: str, *, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# --- ids and values --------------------------------------------------------------------------------------

def fhir_id(text: str) -> str:
    """`text` as a FHIR id: characters outside [A-Za-z0-9-.] become `-`, at most 64 characters."""
    return _NOT_ID_CHAR.sub("-", text)[:64] or "-"


def practitioner_role_id(idnps: str, site_id: str) -> str:
    """`{idnps}-{site_id}` made id-safe, as the registry names a professional's activity at a site."""
    return fhir_id(f"{idnps}-{site_id}")


def healthcare_service_id(cpts_id: str) -> str:
    return f"cpts-{cpts_id}"


def instant(moment: datetime) -> str:
    """An instant as the guide's examples write it: milliseconds and an explicit offset (Paris time)."""
    return moment.astimezone(PARIS).isoformat(timespec="milliseconds")


def reference_id(reference: str | None, resource_type: str) -> str | None:
    """The id of a `Type/id` reference (relative, or absolute ending in `Type/id`), None for another type."""
    parts = (reference or "").rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    return None


def _idnps_identifier(idnps: str) -> dict[str, Any]:
    return {"type": _coding(V2_0203_INTEROPSANTE, "IDNPS"), "system": IDNPS_SYSTEM, "value": idnps}


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


# --- rows -> resources -----------------------------------------------------------------------------------

def slot_status(row: Any, now: datetime) -> str:
    """FHIR status of a slot: held slots are `busy-tentative`, booked ones `busy`, withdrawn ones
    `busy-unavailable`."""
    if row.status == "booked":
        return "busy"
    if row.status == "withdrawn":
        return "busy-unavailable"
    return "busy-tentative" if row.held_until is not None and row.held_until > now else "free"


@lru_cache(maxsize=256)
def _slot_constants(cpts_variant: bool, visibility: tuple[str, ...], service_type: str, appointment_type: str,
                    specialty: str | None) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None,
                                                    dict[str, Any]]:
    """The parts of a Slot that only depend on these few codes, built once and shared by every Slot that has
    them (the resources are serialized, never changed)."""
    meta = {"profile": [CPTS_SLOT_PROFILE if cpts_variant else SLOT_PROFILE],
            "security": [{"system": TRE_R314_TYPE_CRENEAU, "code": code} for code in visibility]}
    specialty_concepts = [_coding(TRE_R38_SPECIALITE, specialty)] if specialty else None
    return meta, [_coding(ACT_CODE, service_type)], specialty_concepts, _coding(APPOINTMENT_TYPE, appointment_type)


def slot(row: Any, *, professional: ProfessionalView, booking_url: str, now: datetime,
         cpts_ids: Sequence[str] = (), cpts_variant: bool = False) -> dict[str, Any]:
    """A slot (a `SlotRow`, or a row of the slot table's columns) as a `FrSlotAgregateur`
    (`sas-cpts-slot-aggregator` in the CPTS variant): visibility codes in `meta.security`; consultation type,
    then a reference to each CPTS of `cpts_ids`, in `serviceType`; the professional's ordinal specialty; the URL
    where it is booked in `comment` (the ANS kit requires it)."""
    meta, service_types, specialty, appointment_type = _slot_constants(
        cpts_variant, visibility_codes(row), row.service_type, row.appointment_type, professional.specialty_code)
    if cpts_ids:
        service_types = service_types + [
            {"extension": [{"url": SLOT_SERVICE_TYPE_EXTENSION, "valueReference": {
                "reference": f"HealthcareService/{healthcare_service_id(cpts_id)}"}}],
             **_coding(TRE_R66_CATEGORIE, CPTS_CATEGORY)} for cpts_id in cpts_ids]
    resource: dict[str, Any] = {"resourceType": "Slot", "id": row.slot_id, "meta": meta,
                                "serviceType": service_types}
    if specialty:
        resource["specialty"] = specialty
    resource["appointmentType"] = appointment_type
    resource["schedule"] = {"reference": f"Schedule/{row.schedule_id}"}
    resource["status"] = slot_status(row, now)
    resource["start"] = instant(row.start)
    resource["end"] = instant(row.end)
    resource["comment"] = booking_url
    return resource


def schedule(row: ScheduleRow) -> dict[str, Any]:
    """A professional's agenda at one site as a `FrScheduleAgregateur`: its actors are the practitioner and
    their activity (PractitionerRole) at that site."""
    return {
        "resourceType": "Schedule",
        "id": row.schedule_id,
        "meta": {"profile": [SCHEDULE_PROFILE]},
        "actor": [{"reference": f"Practitioner/{row.idnps}"},
                  {"reference": f"PractitionerRole/{practitioner_role_id(row.idnps, row.site_id)}"}],
    }


def practitioner(view: ProfessionalView) -> dict[str, Any]:
    """A professional as a `FrPractitionerAgregateur`: id and single identifier the IDNPS, name (civility as
    prefix)."""
    name: dict[str, Any] = {"family": view.family_name, "given": [view.given_name]}
    if view.civility:
        name["prefix"] = [view.civility]
    return {
        "resourceType": "Practitioner",
        "id": view.idnps,
        "meta": {"profile": [PRACTITIONER_PROFILE]},
        "identifier": [_idnps_identifier(view.idnps)],
        "name": [name],
    }


def site_of(view: ProfessionalView, site_id: str) -> dict[str, Any]:
    """The practice site `site_id` of a professional (its id alone if the registry no longer lists it)."""
    return next((s for s in view.sites if s.get("site_id") == site_id), {"site_id": site_id})


def site_location(site: dict[str, Any], *, contained_id: str) -> dict[str, Any]:
    """A practice site as a `FrLocationAgregateur`: INTRN identifier in the registry's site namespace, name,
    address (street line as the RPPS gives it, city from the INSEE code, postcode, INSEE code extension) and
    WGS84 position."""
    location: dict[str, Any] = {
        "resourceType": "Location",
        "id": contained_id,
        "meta": {"profile": [LOCATION_PROFILE]},
        "identifier": [{"type": _coding(LOCATION_IDENTIFIER_TYPE, "INTRN"), "system": PRACTICE_SITE_SYSTEM,
                        "value": site["site_id"]}],
    }
    if site.get("name"):
        location["name"] = site["name"]
    address: dict[str, Any] = {}
    if site.get("address"):
        address["line"] = [site["address"]]
    insee = site.get("commune_insee")
    if insee:
        address["extension"] = [{"url": INSEE_CODE_EXTENSION,
                                 "valueCoding": {"system": TRE_R13_COMMUNE, "code": insee}}]
        commune = communes().get(insee)
        if commune is not None:
            address["city"] = commune.name
    if site.get("postcode"):
        address["postalCode"] = site["postcode"]
    if address:
        location["address"] = address
    if site.get("lat") is not None and site.get("lon") is not None:
        location["position"] = {"latitude": site["lat"], "longitude": site["lon"]}
    return location


def practitioner_role(view: ProfessionalView, site: dict[str, Any]) -> dict[str, Any]:
    """A professional's activity at a site as a `FrPractitionerRoleExerciceAgregateur`: the practitioner, the
    site as contained location and, when the site id is an IDNST, as organization (as in the examples)."""
    site_id = site["site_id"]
    contained_id = f"site-{fhir_id(site_id)}"[:64]
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": practitioner_role_id(view.idnps, site_id),
        "meta": {"profile": [PRACTITIONER_ROLE_PROFILE]},
        "contained": [site_location(site, contained_id=contained_id)],
        "practitioner": {"reference": f"Practitioner/{view.idnps}"},
    }
    if _IDNST.match(site_id):
        role["organization"] = {"identifier": {"type": _coding(V2_0203_INTEROPSANTE, "IDNST"),
                                               "system": IDNST_SYSTEM, "value": site_id}}
    role["location"] = [{"reference": f"#{contained_id}"}]
    if site.get("phone"):
        role["telecom"] = [{"system": "phone", "value": site["phone"]}]
    return role


def healthcare_service(cpts_id: str) -> dict[str, Any]:
    """The service through which a CPTS offers its members' slots, provided by the CPTS's Organization."""
    return {
        "resourceType": "HealthcareService",
        "id": healthcare_service_id(cpts_id),
        "meta": {"profile": [HEALTHCARE_SERVICE_PROFILE]},
        "providedBy": {"reference": f"Organization/{cpts_id}"},
    }


def organization(cpts_id: str, view: CptsView | None) -> dict[str, Any]:
    """A CPTS as a `sas-cpts-organization-aggregator`: id the FINESS, its single identifier the IDNST
    (`1` + FINESS), its name once the registry has announced the CPTS."""
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": cpts_id,
        "meta": {"profile": [ORGANIZATION_PROFILE]},
        "identifier": [{"type": _coding(V2_0203_FR_CORE, "IDNST"), "system": IDNST_SYSTEM,
                        "value": f"1{cpts_id}"}],
    }
    if view is not None and view.name:
        resource["name"] = view.name
    return resource


def appointment(row: AppointmentRow) -> dict[str, Any]:
    """An appointment as a `FrAppointmentSAS`: business identifier, status, times, slot, the professional
    (IDNPS) as participant, and who booked it as operator (a platform account: see `ACCOUNT_SYSTEM`)."""
    system, _, value = row.identifier.partition("|")
    operator = {"type": _coding(V2_0203_INTEROPSANTE, "INTRN"), "system": ACCOUNT_SYSTEM,
                "value": row.booked_by}
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": row.appointment_id,
        "meta": {"profile": [APPOINTMENT_PROFILE]},
        "extension": [{"url": APPOINTMENT_OPERATOR_EXTENSION, "valueReference": {"identifier": operator}}],
        "identifier": [{"system": system, "value": value}],
        "status": row.status,
    }
    if row.cancel_reason:
        resource["cancelationReason"] = _coding(CANCELLATION_REASON,
                                                _CANCEL_CODES.get(row.cancel_reason, "other"))
    if row.start is not None and row.end is not None:
        resource["start"], resource["end"] = instant(row.start), instant(row.end)
    resource["created"] = instant(row.booked_at)
    if row.slot_id:
        resource["slot"] = [{"reference": f"Slot/{row.slot_id}"}]
    resource["participant"] = [{"actor": {"identifier": _idnps_identifier(row.idnps)}, "status": "accepted"}]
    return resource


# --- the Slot search -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotQuery:
    """The aggregator's Slot search: practitioners, start window (never before now), includes, page size."""

    idnps: tuple[str, ...]
    start_from: datetime
    start_to: datetime
    includes: frozenset[str]
    count: int

    @property
    def with_schedules(self) -> bool:
        return INCLUDE_SCHEDULE in self.includes

    @property
    def with_actors(self) -> bool:
        return self.with_schedules and INCLUDE_ACTORS in self.includes

    @property
    def cpts_variant(self) -> bool:
        """`Slot:service-type-reference`: CPTS profiles, and each CPTS slot's HealthcareService and
        Organization. The Organizations come even without `HealthcareService:organization`, as in the guide's
        CPTS examples (whose query does not ask for them)."""
        return INCLUDE_CPTS in self.includes


def parse_slot_query(params: Sequence[tuple[str, str]], *, now: datetime) -> SlotQuery:
    """The supported parameters of a Slot search (others are ignored, FHIR's lenient handling); a missing or
    unusable one is a 400 naming it. `start` needs one `ge` and one `le` bound; `ge` is clamped to now."""
    values: dict[str, list[str]] = {name: [] for name in SLOT_SEARCH_PARAMS}
    for name, value in params:
        if name in values:
            values[name].append(value)
    _free_only(values["status"])
    start_from, start_to = _start_window(values["start"])
    return SlotQuery(idnps=_practitioners(values[PRACTITIONER_PARAM]), start_from=max(start_from, now),
                     start_to=start_to, includes=_includes(values["_include"] + values["_include:iterate"]),
                     count=_count(values["_count"]))


def _free_only(statuses: list[str]) -> None:
    if not statuses:
        raise FhirError(400, "'status' is required: status=free.", expression="status", code="required")
    if any(value != "free" for raw in statuses for value in raw.split(",")):
        raise FhirError(400, "Only status=free is served.", expression="status", code="not-supported")


def _practitioners(raws: list[str]) -> tuple[str, ...]:
    if len(raws) != 1:
        raise FhirError(400, f"Give '{PRACTITIONER_PARAM}' once, with 1 to {MAX_PRACTITIONERS} "
                             f"comma-separated IDNPS ({IDNPS_SYSTEM}|810100050075,...).",
                        expression=PRACTITIONER_PARAM, code="required" if not raws else "invalid")
    found = []
    for token in raws[0].split(","):
        system, separator, value = token.strip().rpartition("|")
        if separator and system != IDNPS_SYSTEM:
            raise FhirError(400, f"'{PRACTITIONER_PARAM}' takes IDNPS identifiers ({IDNPS_SYSTEM}|...).",
                            expression=PRACTITIONER_PARAM)
        if not value:
            raise FhirError(400, f"Empty identifier in '{PRACTITIONER_PARAM}'.",
                            expression=PRACTITIONER_PARAM)
        found.append(value)
    distinct = tuple(dict.fromkeys(found))
    if len(distinct) > MAX_PRACTITIONERS:
        raise FhirError(400, f"At most {MAX_PRACTITIONERS} practitioners per search in "
                             f"'{PRACTITIONER_PARAM}' ({len(distinct)} given).",
                        expression=PRACTITIONER_PARAM, code="too-costly")
    return distinct


def _start_window(raws: list[str]) -> tuple[datetime, datetime]:
    bounds: dict[str, datetime] = {}
    for raw in raws:
        prefix, value = raw[:2], raw[2:]
        if prefix not in ("ge", "le"):
            raise FhirError(400, "'start' takes the prefixes ge and le (start=ge...&start=le...).",
                            expression="start", code="not-supported")
        if prefix in bounds:
            raise FhirError(400, f"'start={prefix}' may be given once.", expression="start")
        bounds[prefix] = _search_moment(value, end_of_day=prefix == "le")
    if set(bounds) != {"ge", "le"}:
        raise FhirError(400, "'start' needs both bounds: start=ge<instant>&start=le<instant>.",
                        expression="start", code="required")
    return bounds["ge"], bounds["le"]


def _search_moment(text: str, *, end_of_day: bool) -> datetime:
    """A date or dateTime search value; a day is taken in Paris time, as a whole (its end for `le`)."""
    text = text.replace(" ", "+")  # an offset's `+` sent unencoded, as in the guide, decodes as a space
    try:
        if _SEARCH_DATE.match(text):
            day = datetime.combine(date.fromisoformat(text), time.min, PARIS)
            return day + timedelta(days=1, microseconds=-1) if end_of_day else day
        moment = datetime.fromisoformat(text) if _SEARCH_DATE_TIME.match(text) else None
    except ValueError:
        moment = None
    if moment is None:
        raise FhirError(400, f"'start' value {text[:40]!r} is not a FHIR date or dateTime.",
                        expression="start")
    if moment.tzinfo is None:
        raise FhirError(400, f"'start' value {text} needs an offset (e.g. 2026-01-05T08:00:00.000+01:00).",
                        expression="start")
    return moment


def _includes(raws: list[str]) -> frozenset[str]:
    requested = {value for raw in raws for value in raw.split(",")}
    unknown = requested - set(INCLUDES)
    if unknown:
        raise FhirError(400, f"Unsupported _include {', '.join(sorted(unknown))}; supported: "
                             f"{', '.join(INCLUDES)}.", expression="_include", code="not-supported")
    return frozenset(requested)


def _count(counts: list[str]) -> int:
    if not counts:
        return MAX_SLOTS
    if len(counts) > 1 or not counts[0].isdigit() or int(counts[0]) < 1:
        raise FhirError(400, "'_count' is one positive integer.", expression="_count")
    return min(int(counts[0]), MAX_SLOTS)


def self_link(url: str, raw_query: str) -> str:
    """The search URL as received, with the parameters this search applied, in their order and encoding."""
    kept = [part for part in raw_query.split("&")
            if unquote_plus(part.partition("=")[0]) in SLOT_SEARCH_PARAMS]
    return f"{url}?{'&'.join(kept)}" if kept else url


def slot_bundle(*, query: SlotQuery, slots: Sequence[Any], total: int,
                professionals: dict[str, ProfessionalView], schedules: dict[str, ScheduleRow],
                cpts: dict[str, CptsView], base_url: str, self_url: str, booking_url: Callable[[str], str],
                now: datetime) -> dict[str, Any]:
    """The searchset Bundle of a Slot search, shaped like the guide's examples: each slot (`match`) followed
    by what it brings in first (`include`): its Schedule, Practitioner and PractitionerRole, then (CPTS
    variant) the HealthcareService and Organization of each CPTS of the professional, for slots visible to
    CPTS."""
    entries: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def first(resource_type: str, id_: str) -> bool:
        if (resource_type, id_) in seen:
            return False
        seen.add((resource_type, id_))
        return True

    def add(resource: dict[str, Any], mode: str = "include") -> None:
        entries.append({"fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
                        "resource": resource, "search": {"mode": mode}})

    cpts_variant, with_schedules, with_actors = query.cpts_variant, query.with_schedules, query.with_actors
    slot_url = f"{base_url}/Slot/"
    for row in slots:
        professional = professionals[row.idnps]
        cpts_ids = list(professional.cpts_ids) if cpts_variant and row.vis_cpts else []
        entries.append({"fullUrl": slot_url + row.slot_id,
                        "resource": slot(row, professional=professional, booking_url=booking_url(row.slot_id),
                                         now=now, cpts_ids=cpts_ids, cpts_variant=cpts_variant),
                        "search": {"mode": "match"}})
        if with_schedules and first("Schedule", row.schedule_id):
            add(schedule(schedules[row.schedule_id]))
        if with_actors and first("Practitioner", row.idnps):
            add(practitioner(professional))
        if with_actors and first("PractitionerRole", practitioner_role_id(row.idnps, row.site_id)):
            add(practitioner_role(professional, site_of(professional, row.site_id)))
        for cpts_id in cpts_ids:
            if first("HealthcareService", cpts_id):
                add(healthcare_service(cpts_id))
                add(organization(cpts_id, cpts.get(cpts_id)))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "meta": {"profile": [CPTS_BUNDLE_PROFILE if query.cpts_variant and slots else BUNDLE_PROFILE]},
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle


# --- requests -> commands --------------------------------------------------------------------------------

def _element(resource_type: str, loc: Sequence[str | int]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_resource(data: Any, resource_type: str) -> Any:
    """`data` validated as an R4B `resource_type`; a 400 naming the first element at fault otherwise."""
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        raise FhirError(400, f"The body must be a {resource_type} resource.", expression=resource_type,
                        code="structure")
    try:
        return get_fhir_model_class(resource_type).model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        element = _element(resource_type, error["loc"])
        raise FhirError(400, f"{element}: {error['msg']}", expression=element, code="structure") from None


@dataclass(frozen=True)
class SlotDraft:
    """A slot to publish, read from a FHIR Slot: the Schedule it hangs off and what the publisher chose.
    Unset choices (None) take the domain's defaults (`SlotSpec`)."""

    schedule_id: str
    start: datetime
    end: datetime
    service_type: str | None
    visibility: frozenset[str] | None
    appointment_type: str | None
    comment: str | None

    def spec(self, agenda: ScheduleRow) -> SlotSpec:
        """The slot for the professional and site of `agenda`; domain errors name `Slot.<field>`."""
        chosen = {"service_type": self.service_type, "visibility": self.visibility,
                  "appointment_type": self.appointment_type}
        return SlotSpec(idnps=agenda.idnps, site_id=agenda.site_id, start=self.start, end=self.end,
                        comment=self.comment, field="Slot",
                        **{name: value for name, value in chosen.items() if value is not None})


def _codes(concepts: Sequence[Any], system: str) -> list[str]:
    """The codes of `system` in parsed CodeableConcepts, in order."""
    return [c.code for concept in concepts for c in concept.coding or [] if c.system == system and c.code]


def parse_slot(data: Any) -> SlotDraft:
    """A Slot to create (GAP shared agenda): `schedule` (Schedule/<id>), `start`, `end`, `status` free, one
    consultation type (v3 ActCode AMB, HH or VR) in `serviceType`, visibility codes (TRE_R314) in
    `meta.security`, `appointmentType` (v2-0276 ROUTINE or WALKIN). Other serviceTypes (text, CPTS references)
    and `specialty` are the platform's to derive and are not read. A posted `comment` is kept as the slot's
    note: the `comment` we serve is always the platform's booking URL."""
    model = parse_resource(data, "Slot")
    schedule_id = reference_id(model.schedule.reference, "Schedule")
    if schedule_id is None:
        raise FhirError(422, "Slot.schedule must reference Schedule/<id>.", expression="Slot.schedule")
    if model.status != "free":
        raise FhirError(422, "A published slot is free.", expression="Slot.status", code="business-rule")
    kinds = set(_codes(model.serviceType or [], ACT_CODE))
    if len(kinds) > 1:
        raise FhirError(422, "One consultation type (AMB, HH or VR) per slot: publish one slot per type.",
                        expression="Slot.serviceType", code="business-rule")
    security = model.meta.security or [] if model.meta else []
    labels = frozenset(s.code for s in security if s.system == TRE_R314_TYPE_CRENEAU and s.code)
    appointment_types = _codes([model.appointmentType] if model.appointmentType else [], APPOINTMENT_TYPE)
    if model.comment is not None and len(model.comment) > 500:
        raise FhirError(422, "Slot.comment holds at most 500 characters.", expression="Slot.comment")
    return SlotDraft(schedule_id=schedule_id, start=model.start, end=model.end,
                     service_type=next(iter(kinds), None), visibility=labels or None,
                     appointment_type=appointment_types[0] if appointment_types else None,
                     comment=model.comment)


@dataclass(frozen=True)
class ScheduleTarget:
    """Whose agenda, at which site, a Schedule to create is: the practitioner (IDNPS) and the site, given as
    the activity (`PractitionerRole/<id>`) or as a Location identifier in the registry's site namespace."""

    idnps: str
    role_id: str | None
    site_id: str | None

    def site_of(self, professional: ProfessionalView) -> str:
        """The practice site of `professional` this Schedule is for; 422 if it is not one of theirs."""
        for site in professional.sites:
            site_id = site.get("site_id", "")
            if site_id == self.site_id or self.role_id == practitioner_role_id(professional.idnps, site_id):
                return site_id
        raise FhirError(422, f"The site named in Schedule.actor is not a practice site of "
                             f"{professional.idnps}.", expression="Schedule.actor", code="business-rule")


def parse_schedule(data: Any) -> ScheduleTarget:
    """A Schedule to create: its actors name the practitioner (`Practitioner/<IDNPS>`, or an identifier
    `urn:oid:1.2.250.1.71.4.2.1|<IDNPS>`) and the site (`PractitionerRole/<id>`, or an identifier
    `urn:cpts-platform:registry:practice-site|<site id>`)."""
    model = parse_resource(data, "Schedule")
    idnps = role_id = site_id = None
    for actor in model.actor:
        idnps = reference_id(actor.reference, "Practitioner") or idnps
        role_id = reference_id(actor.reference, "PractitionerRole") or role_id
        identifier = actor.identifier
        if identifier is not None and identifier.system == IDNPS_SYSTEM:
            idnps = identifier.value
        if identifier is not None and identifier.system == PRACTICE_SITE_SYSTEM:
            site_id = identifier.value
    if idnps is None:
        raise FhirError(422, f"Schedule.actor needs the practitioner: Practitioner/<IDNPS> or an identifier "
                             f"{IDNPS_SYSTEM}|<IDNPS>.", expression="Schedule.actor", code="required")
    if role_id is None and site_id is None:
        raise FhirError(422, f"Schedule.actor needs the practice site: PractitionerRole/<id> or a Location "
                             f"identifier {PRACTICE_SITE_SYSTEM}|<site id>.", expression="Schedule.actor",
                        code="required")
    return ScheduleTarget(idnps=idnps, role_id=role_id, site_id=site_id)


@dataclass(frozen=True)
class AppointmentRequest:
    """An Appointment to create or whose status to change: its business identifier (`system|value`), status,
    and the slot, as `Slot/<id>` or as the participant's IDNPS and start (what the SAS's Appointments
    carry)."""

    identifier: str
    status: str
    slot_id: str | None
    idnps: str | None
    start: datetime | None
    cancel_reason: str | None


def parse_appointment(data: Any) -> AppointmentRequest:
    """An Appointment shaped like the guide's `FrAppointmentSAS`: one identifier with system and value, status
    among booked, fulfilled, noshow and cancelled, `slot` or the participant's IDNPS and `start`, and for a
    cancellation an optional `cancelationReason` (appointment-cancellation-reason: pat*, prov*, other)."""
    model = parse_resource(data, "Appointment")
    identifiers = model.identifier or []
    if len(identifiers) != 1 or not identifiers[0].system or not identifiers[0].value:
        raise FhirError(422, "Appointment.identifier: exactly one, with system and value.",
                        expression="Appointment.identifier", code="required")
    identifier = f"{identifiers[0].system}|{identifiers[0].value}"
    if len(identifier) > 100:
        raise FhirError(422, "Appointment.identifier: system|value holds at most 100 characters.",
                        expression="Appointment.identifier", code="too-long")
    if model.status not in APPOINTMENT_STATUSES:
        raise FhirError(422, f"Appointment.status must be one of {', '.join(APPOINTMENT_STATUSES)}.",
                        expression="Appointment.status", code="not-supported")
    slot_ids = {reference_id(s.reference, "Slot") for s in model.slot or []}
    if None in slot_ids or len(slot_ids) > 1:
        raise FhirError(422, "Appointment.slot: one reference Slot/<id>.", expression="Appointment.slot")
    actors = [p.actor.identifier for p in model.participant if p.actor is not None and p.actor.identifier]
    professionals = {a.value for a in actors if a.system == IDNPS_SYSTEM and a.value}
    if len(professionals) > 1:
        raise FhirError(422, "Appointment.participant: one professional (IDNPS).",
                        expression="Appointment.participant")
    reasons = _codes([model.cancelationReason] if model.cancelationReason else [], CANCELLATION_REASON)
    return AppointmentRequest(identifier=identifier, status=model.status, slot_id=next(iter(slot_ids), None),
                              idnps=next(iter(professionals), None), start=model.start,
                              cancel_reason=_cancel_reason(reasons[0]) if reasons else None)


def _cancel_reason(code: str) -> str:
    if code.startswith("pat"):
        return "patient"
    return "professional" if code.startswith("prov") else "other"


def identifier_param(raws: Collection[str]) -> str:
    """The `identifier` of a conditional update, as `system|value`."""
    if len(raws) != 1:
        raise FhirError(400, "Give 'identifier' once, as system|value.", expression="identifier",
                        code="required")
    system, _, value = next(iter(raws)).partition("|")
    if not system or not value:
        raise FhirError(400, "'identifier' needs a system and a value (system|value).",
                        expression="identifier")
    return f"{system}|{value}"
