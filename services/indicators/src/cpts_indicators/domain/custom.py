"""Custom indicators: a CPTS defines its own, without code, as a count or a ratio of two counts of facts.

Each part (the count, or the numerator and the denominator of a ratio) names one kind of fact from an explicit
allow-list (`FACT_KINDS`: the event types the indicators keep, by a short name) and filters on a few attributes
that never identify anyone (origin, urgency, consultation type, priority group, orientation, status...), each
to values from a closed list taken from the event models. A part counts the facts of its kind about the CPTS
whose event time falls in the period (one per event: a duplicate never counts twice).

A definition becomes catalogue definitions (`IndicatorDefinition`, mission `custom`, id `custom.<slug>`; a
ratio also gets its two hidden parts `custom.<slug>.numerator` and `.denominator`) evaluated and masked by the
same code as the built-in ones (`queries.py`, `masking.py`) from the facts kept since the beginning: a
definition created today has values for every past period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from cpts_events import patient_matching as m
from cpts_events import registry as r
from cpts_events import snp_dispatch as s
from cpts_indicators.domain.catalogue import (
    Catalogue,
    CatalogueError,
    Computation,
    IndicatorDefinition,
    Selector,
    check_catalogue,
)

PREFIX = "custom"
SLUG_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
PARTS = ("numerator", "denominator")
BOOLEAN = (True, False)


def _choices(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    """The values a field of an event model may take (its `Literal`), or true / false for a boolean."""
    annotation = model.model_fields[name].annotation
    if annotation is bool:
        return BOOLEAN
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is Literal:
            return get_args(candidate)
    raise TypeError(f"{model.__name__}.{name} has no closed list of values")


def _attributes(model: type[BaseModel], *names: str) -> dict[str, tuple[Any, ...]]:
    out = {name: _choices(model, name) for name in names}
    if issubclass(model, s.AppointmentFacts):
        # Which side of the appointment the CPTS is on: its member's agenda, or the request it received.
        out |= {"professional_cpts": BOOLEAN, "request_cpts": BOOLEAN}
    return out


@dataclass(frozen=True)
class FactKind:
    """A kind of fact a custom indicator may count: its event type, French label and filterable attributes
    with their allowed values."""

    event_type: str
    label: str
    attributes: dict[str, tuple[Any, ...]]


_REQUEST = ("origin", "urgency")
_APPOINTMENT = ("kind", "origin", "service_type")
_PATIENT = ("priority_group", "age_band", "source")
_PROPOSAL = ("priority_group", "age_band")

FACT_KINDS: dict[str, FactKind] = {
    "care_request.received": FactKind(
        s.CareRequestReceived.__event_type__, "Demandes de soins non programmés reçues",
        _attributes(s.CareRequestReceived, *_REQUEST, "age_band", "has_mt")),
    "care_request.closed_without_slot": FactKind(
        s.CareRequestClosedWithoutSlot.__event_type__, "Demandes closes sans créneau",
        _attributes(s.CareRequestClosedWithoutSlot, *_REQUEST, "orientation", "reason")),
    "appointment.booked": FactKind(s.AppointmentBooked.__event_type__, "Rendez-vous pris",
                                   _attributes(s.AppointmentBooked, *_APPOINTMENT)),
    "appointment.cancelled": FactKind(s.AppointmentCancelled.__event_type__, "Rendez-vous annulés",
                                      _attributes(s.AppointmentCancelled, *_APPOINTMENT, "reason")),
    "appointment.fulfilled": FactKind(s.AppointmentFulfilled.__event_type__, "Consultations réalisées",
                                      _attributes(s.AppointmentFulfilled, *_APPOINTMENT)),
    "appointment.noshow": FactKind(s.AppointmentNoShow.__event_type__, "Rendez-vous non honorés",
                                   _attributes(s.AppointmentNoShow, *_APPOINTMENT)),
    "slot.published": FactKind(s.SlotPublished.__event_type__, "Créneaux publiés",
                               _attributes(s.SlotPublished, "service_type", "appointment_type")),
    "slot.withdrawn": FactKind(s.SlotWithdrawn.__event_type__, "Créneaux retirés",
                               _attributes(s.SlotWithdrawn, "service_type", "appointment_type")),
    "patient_without_mt.seen": FactKind(s.PatientWithoutMtSeen.__event_type__,
                                        "Patients sans médecin traitant vus en soins non programmés", {}),
    "patient.enrolled": FactKind(m.PatientEnrolled.__event_type__,
                                 "Inscriptions de patients sans médecin traitant",
                                 _attributes(m.PatientEnrolled, *_PATIENT, "re_enrolment")),
    "patient.withdrawn": FactKind(m.PatientWithdrawn.__event_type__, "Patients retirés de la liste",
                                  _attributes(m.PatientWithdrawn, *_PATIENT, "reason")),
    "patient.found_elsewhere": FactKind(m.PatientFoundElsewhere.__event_type__,
                                        "Patients ayant trouvé un médecin traitant par ailleurs",
                                        _attributes(m.PatientFoundElsewhere, *_PATIENT)),
    "mt.declared": FactKind(m.MtDeclared.__event_type__, "Déclarations de médecin traitant",
                            _attributes(m.MtDeclared, *_PATIENT)),
    "proposal.made": FactKind(m.ProposalMade.__event_type__, "Propositions faites aux médecins",
                              _attributes(m.ProposalMade, *_PROPOSAL)),
    "proposal.accepted": FactKind(m.ProposalAccepted.__event_type__, "Propositions acceptées",
                                  _attributes(m.ProposalAccepted, *_PROPOSAL)),
    "proposal.declined": FactKind(m.ProposalDeclined.__event_type__, "Propositions déclinées",
                                  _attributes(m.ProposalDeclined, *_PROPOSAL, "declined_by", "reason")),
    "proposal.expired": FactKind(m.ProposalExpired.__event_type__, "Propositions expirées",
                                 _attributes(m.ProposalExpired, *_PROPOSAL)),
    "membership.changed": FactKind(r.MembershipChanged.__event_type__, "Changements d'adhésion à la CPTS",
                                   _attributes(r.MembershipChanged, "status")),
}


class CustomPart(BaseModel):
    """One part of a custom indicator: a kind of fact and filters on its attributes (all must hold)."""

    model_config = ConfigDict(extra="forbid")

    fact: str = Field(description="Type de fait compté (voir `GET /indicators/custom-facts`).",
                      examples=["care_request.received"])
    filters: dict[str, Annotated[list[str | bool], Field(max_length=20)]] = Field(
        default_factory=dict, max_length=10, description="Attribut → valeurs acceptées (l'une d'elles).",
        examples=[{"origin": ["sas"], "urgency": ["same_day", "24h"]}])


class InvalidDefinition(ValueError):
    """A custom definition naming an unknown kind of fact, attribute or value: `errors` lists each
    (field, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors


def check_part(prefix: str, part: Any) -> list[tuple[str, str]]:
    """The errors of one part (`fact`, `filters`), each naming its field (never echoing a value)."""
    kind = FACT_KINDS.get(part.fact)
    if kind is None:
        return [(f"{prefix}.fact", f"kind of fact not allowed (one of: {', '.join(sorted(FACT_KINDS))})")]
    errors = []
    for name, values in part.filters.items():
        field = f"{prefix}.filters.{name}"
        allowed = kind.attributes.get(name)
        if allowed is None:
            errors.append((field, "attribute not allowed for this kind of fact"
                           + (f" (one of: {', '.join(sorted(kind.attributes))})" if kind.attributes else "")))
            continue
        if not values:
            errors.append((field, "at least one value"))
        for index, value in enumerate(values):
            if not any(type(value) is type(a) and value == a for a in allowed):
                errors.append((f"{field}.{index}", "value not allowed (one of: "
                               + ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
                               + ")"))
    return errors


def _selector(part: Any) -> Selector:
    kind = FACT_KINDS[part.fact]
    where: dict[str, Any] = {}
    for name, values in sorted(part.filters.items()):
        distinct = list(dict.fromkeys(values))
        if kind.attributes[name] == BOOLEAN:
            if len(distinct) == 1:
                where[name] = distinct[0]
            continue  # true or false: no condition
        where[name] = distinct
    return Selector(events=[kind.event_type], where=where)


def indicator_id(slug: str) -> str:
    return f"{PREFIX}.{slug}"


def definitions_of(*, slug: str, version: int, label: str, description: str, unit: str, direction: str,
                   kind: str, numerator: Any, denominator: Any | None, scale: float) -> list[IndicatorDefinition]:
    """The catalogue definitions of a custom indicator: its count, or its ratio after its two hidden parts."""
    main = indicator_id(slug)
    common: dict[str, Any] = {"version": version, "mission": "custom", "unit": unit, "direction": direction}
    text = description or label
    if kind == "count":
        return [IndicatorDefinition(id=main, label=label, description=text, **common,
                                    compute=Computation(op="count", select=_selector(numerator)))]
    parts = [IndicatorDefinition(id=f"{main}.{name}", label=f"{label} ({name})", description=text,
                                 **{**common, "unit": "faits"},
                                 compute=Computation(op="count", select=_selector(spec)))
             for name, spec in zip(PARTS, (numerator, denominator), strict=True)]
    ratio = IndicatorDefinition(id=main, label=label, description=text, decimals=1, **common,
                                compute=Computation(op="ratio", numerator=parts[0].id, denominator=parts[1].id,
                                                    scale=scale))
    return [*parts, ratio]


def stored_definitions(row: Any) -> list[IndicatorDefinition]:
    """The catalogue definitions of a stored custom indicator (`repository.CustomIndicator`)."""
    return definitions_of(
        slug=row.slug, version=row.version, label=row.label, description=row.description, unit=row.unit,
        direction=row.direction, kind=row.kind, numerator=CustomPart.model_validate(row.numerator),
        denominator=CustomPart.model_validate(row.denominator) if row.denominator else None, scale=row.scale)


def is_hidden(definition_id: str) -> bool:
    """A part of a custom ratio: computed, never shown by itself."""
    return definition_id.startswith(PREFIX + ".") and definition_id.rsplit(".", 1)[-1] in PARTS \
        and definition_id.count(".") == 2


def extended(base: Catalogue, custom: list[IndicatorDefinition]) -> Catalogue:
    """The catalogue with a CPTS's custom definitions after the built-in ones."""
    if not custom:
        return base
    return base.model_copy(update={"indicators": [*base.indicators, *custom]})


def check_definition(base: Catalogue, *, kind: str, numerator: Any, denominator: Any | None,
                     **definition: Any) -> list[IndicatorDefinition]:
    """The definitions of a custom indicator, after checking every part (InvalidDefinition lists the faults)."""
    errors = check_part("numerator", numerator)
    if kind == "ratio":
        if denominator is None:
            errors.append(("denominator", "a ratio needs a denominator"))
        else:
            errors += check_part("denominator", denominator)
    elif denominator is not None:
        errors.append(("denominator", "a count has no denominator"))
    if errors:
        raise InvalidDefinition(errors)
    out = definitions_of(kind=kind, numerator=numerator, denominator=denominator, **definition)
    try:
        check_catalogue(extended(base, out))
    except CatalogueError as exc:  # the allow-list keeps to the facts' schemas: not expected
        raise InvalidDefinition([("numerator", str(exc))]) from None
    return out
