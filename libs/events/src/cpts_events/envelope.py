"""CloudEvents 1.0 envelope, carried on Kafka in binary content mode (`ce_*` headers, JSON value)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from cpts_events.catalogue import CATALOGUE, EventType

CONTENT_TYPE = "application/json"
CONTENT_TYPE_HEADER = "content-type"
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time")


class EventPayload(BaseModel):
    """Base of every event payload: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    __event_type__: ClassVar[str]


P = TypeVar("P", bound=EventPayload)


class EventDecodeError(ValueError):
    """The message is not a CloudEvent this platform can read (headers, JSON)."""


class EventSchemaError(ValueError):
    """The message is a known event type whose data does not match its payload model."""


@dataclass(frozen=True)
class Event(Generic[P]):
    type: str
    source: str
    payload: P
    key: str
    subject: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def spec(self) -> EventType:
        return CATALOGUE[self.type]


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def new_event(payload: P, *, source: str, subject: str | None = None) -> Event[P]:
    """Wrap a payload in an envelope; its type, topic and key come from the catalogue."""
    spec = CATALOGUE[type(payload).__event_type__]
    return Event(type=spec.name, source=source, payload=payload, key=spec.key(payload), subject=subject)


def _header_time(value: datetime) -> bytes:
    text = value.isoformat()
    return (text[:-6] + "Z").encode() if text.endswith("+00:00") else text.encode()


def encode(event: Event) -> KafkaRecord:
    """Binary content mode: CloudEvents attributes as `ce_*` headers, the payload as the JSON value.

    Written directly (the hot path of every publish); `tests/` checks the result against the CloudEvents SDK.
    """
    spec = event.spec
    headers = [
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_specversion", b"1.0"),
        ("ce_time", _header_time(event.time)),
        ("ce_dataschema", spec.dataschema.encode()),
        (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),
    ]
    if event.subject:
        headers.append(("ce_subject", event.subject.encode()))
    return KafkaRecord(topic=spec.topic, key=event.key.encode(), value=event.payload.model_dump_json().encode(),
                       headers=headers)


_new_instance = object.__new__


def decode(headers: list[tuple[str, bytes]] | tuple, key: bytes | None, value: bytes | None) -> Event:
    """Read a Kafka record back into an Event; raise EventDecodeError or EventSchemaError when it cannot."""
    try:
        attributes = {k.lower(): v.decode() for k, v in headers if v is not None}
    except (UnicodeDecodeError, AttributeError) as exc:
        raise EventDecodeError(f"not a CloudEvent in binary mode: {type(exc).__name__}") from exc
    # Without these the event could not be deduplicated, ordered in time or routed to its model.
    missing = [h for h in REQUIRED_HEADERS if not attributes.get(h)]
    if missing:
        raise EventDecodeError(f"missing CloudEvents headers: {', '.join(missing)}")
    if attributes["ce_specversion"] != "1.0":
        raise EventDecodeError(f"unsupported CloudEvents specversion {attributes['ce_specversion']!r}")
    content_type = attributes.get(CONTENT_TYPE_HEADER, CONTENT_TYPE).split(";")[0].strip()
    if content_type != CONTENT_TYPE:
        raise EventDecodeError(f"unsupported content type {content_type!r}")
    try:
        time = datetime.fromisoformat(attributes["ce_time"])
    except ValueError:
        raise EventDecodeError("ce_time is not an RFC 3339 timestamp") from None
    if time.tzinfo is None:
        raise EventDecodeError("ce_time has no offset")
    type_name = attributes["ce_type"]
    spec = CATALOGUE.get(type_name)
    if spec is None:
        raise EventDecodeError(f"unknown event type {type_name!r}")
    try:
        # The model's validator itself (what `model_validate_json` calls, without its wrapper).
        payload = spec.payload.__pydantic_validator__.validate_json(value or b"")
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise EventDecodeError("event data is not JSON") from None
        if errors and errors[0]["type"] == "model_type":
            raise EventSchemaError("event data is not a JSON object") from None
        # Name the fields and the kind of error, never the values (they may identify a patient).
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in errors)
        raise EventSchemaError(f"invalid {type_name} data: {fields}") from exc
    # Every field is given: the instance is filled without the frozen dataclass's `__init__`, which sets each
    # field through `object.__setattr__` (a sixth of the cost of decoding an event, on every consumer's path).
    event = _new_instance(Event)
    event.__dict__.update(type=type_name, source=attributes["ce_source"], payload=payload,
                          key=(key or b"").decode(errors="replace") or spec.key(payload),
                          subject=attributes.get("ce_subject"), id=attributes["ce_id"], time=time)
    return event
