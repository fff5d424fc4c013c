"""Every event type of the platform, with its topic, partition key and payload model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from cpts_events.envelope import EventPayload

P = TypeVar("P", bound="EventPayload")


class topics:
    """Kafka topics: one per producing service; `<topic>.dlq` holds the poison messages of its consumers."""

    REGISTRY = "registry"
    SNP_DISPATCH = "snp-dispatch"
    PATIENT_MATCHING = "patient-matching"
    INDICATORS = "indicators"

    ALL = (REGISTRY, SNP_DISPATCH, PATIENT_MATCHING, INDICATORS)

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


@dataclass(frozen=True)
class EventType:
    name: str
    topic: str
    payload: type[EventPayload]
    key: Callable[[EventPayload], str]
    key_description: str
    description: str

    @property
    def dataschema(self) -> str:
        return f"urn:cpts:event-schema:{self.name}"


CATALOGUE: dict[str, EventType] = {}


def event_type(name: str, *, topic: str, key: str, description: str) -> Callable[[type[P]], type[P]]:
    """Register a payload model as the data of the versioned event type `name`, keyed by its field `key`."""
    if not re.fullmatch(r"v[1-9]\d*", name.rsplit(".", 1)[-1]):
        raise ValueError(f"event type {name!r} must end with a version (.v1, .v2...)")
    if topic not in topics.ALL:
        raise ValueError(f"unknown topic {topic!r}")

    def register(payload: type[P]) -> type[P]:
        if name in CATALOGUE:
            raise ValueError(f"event type {name!r} registered twice")
        if key not in payload.model_fields:
            raise ValueError(f"{payload.__name__} has no field {key!r} to key {name!r} by")
        CATALOGUE[name] = EventType(
            name=name,
            topic=topic,
            payload=payload,
            key=lambda p: str(getattr(p, key)),
            key_description=key,
            description=description,
        )
        payload.__event_type__ = name
        return payload

    return register
