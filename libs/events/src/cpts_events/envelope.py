"""CloudEvents 1.0 envelope, carried on Kafka in binary content mode (`ce_*` headers, JSON value)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict, ValidationError

from cpts_events.catalogue import CATALOGUE, EventType

CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time")
_FORMAT = JSONFormat()


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


def encode(event: Event) -> KafkaRecord:
    spec = event.spec
    attributes = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "specversion": "1.0",
        "time": event.time,
        "datacontenttype": CONTENT_TYPE,
        "dataschema": spec.dataschema,
    }
    if event.subject:
        attributes["subject"] = event.subject
    message = ce_kafka.to_binary(
        CloudEvent(attributes=attributes, data=event.payload.model_dump(mode="json")),
        _FORMAT,
        key_mapper=lambda _: event.key,
    )
    return KafkaRecord(
        topic=spec.topic,
        key=event.key.encode(),
        value=message.value,
        headers=[(name, value) for name, value in message.headers.items()],
    )


def decode(headers: list[tuple[str, bytes]] | tuple, key: bytes | None, value: bytes | None) -> Event:
    """Read a Kafka record back into an Event; raise EventDecodeError or EventSchemaError when it cannot."""
    present = {k.lower() for k, _ in headers}
    missing = [h for h in REQUIRED_HEADERS if h not in present]
    if missing:
        # The SDK would invent an id and a time: the event could then never be deduplicated.
        raise EventDecodeError(f"missing CloudEvents headers: {', '.join(missing)}")
    try:
        message = ce_kafka.KafkaMessage(headers={k: v for k, v in headers}, key=key, value=value or b"")
        cloud_event = ce_kafka.from_binary(message, _FORMAT, CloudEvent)
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventDecodeError(f"not a CloudEvent in binary mode: {type(exc).__name__}") from exc
    except Exception as exc:  # the SDK raises its own validation errors for missing attributes
        raise EventDecodeError(f"not a CloudEvent in binary mode: {type(exc).__name__}") from exc
    type_name = cloud_event.get_type()
    spec = CATALOGUE.get(type_name)
    if spec is None:
        raise EventDecodeError(f"unknown event type {type_name!r}")
    data = cloud_event.get_data()
    if isinstance(data, (str, bytes)) or data is None:
        try:
            json.loads(value or b"")
        except ValueError:
            raise EventDecodeError("event data is not JSON") from None
    if not isinstance(data, dict):
        raise EventSchemaError("event data is not a JSON object")
    try:
        payload = spec.payload.model_validate(data)
    except ValidationError as exc:
        # Name the fields and the kind of error, never the values (they may identify a patient).
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors())
        raise EventSchemaError(f"invalid {type_name} data: {fields}") from exc
    time = cloud_event.get_time()
    return Event(
        type=type_name,
        source=cloud_event.get_source(),
        payload=payload,
        key=(key or b"").decode() or spec.key(payload),
        subject=cloud_event.get_subject(),
        id=cloud_event.get_id(),
        time=time if time is not None else datetime.now(UTC),
    )
