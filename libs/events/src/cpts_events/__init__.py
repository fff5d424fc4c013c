"""The event catalogue of the platform: one envelope (CloudEvents 1.0), versioned types, payload models."""

from cpts_events.catalogue import CATALOGUE, EventType, event_type, topics
from cpts_events.envelope import (
    Event,
    EventDecodeError,
    EventPayload,
    EventSchemaError,
    KafkaRecord,
    decode,
    encode,
    new_event,
)

# Importing the payload modules registers their event types in the catalogue.
from cpts_events import registry as registry  # noqa: E402
from cpts_events import snp_dispatch as snp_dispatch  # noqa: E402
from cpts_events import indicators as indicators  # noqa: E402
from cpts_events import patient_matching as patient_matching  # noqa: E402

__all__ = [
    "CATALOGUE",
    "Event",
    "EventDecodeError",
    "EventPayload",
    "EventSchemaError",
    "EventType",
    "KafkaRecord",
    "decode",
    "encode",
    "event_type",
    "new_event",
    "topics",
]
