"""The CloudEvents envelope on Kafka (binary mode), the catalogue's rules, and the committed schemas."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from cpts_events import (
    CATALOGUE,
    Event,
    EventDecodeError,
    EventSchemaError,
    KafkaRecord,
    decode,
    encode,
    event_type,
    new_event,
    topics,
)
from cpts_events.registry import ProfessionalRegistered
from cpts_events.schemas import asyncapi, payload_schemas, render, stale

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
REGISTERED = "fr.cpts.registry.professional.registered.v1"


def registered(**overrides) -> ProfessionalRegistered:
    values = {"idnps": "810001234567", "family_name": "Lefèvre", "given_name": "Zoé", "profession_code": "10",
              "specialty_code": "SM54", "commune_insee": "2A004", "cpts_ids": ["690049999", "69004888B"]}
    values.update(overrides)
    return ProfessionalRegistered(**values)


def an_event(**overrides) -> Event:
    return new_event(registered(**overrides), source="/cpts/registry", subject="professional/810001234567")


def headers_of(record: KafkaRecord) -> dict[str, bytes]:
    return dict(record.headers)


def with_headers(record: KafkaRecord, **changes: bytes | None) -> list[tuple[str, bytes]]:
    headers = headers_of(record)
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return list(headers.items())


# --- envelope -----------------------------------------------------------------------------------------------


def test_new_event_takes_type_topic_and_key_from_the_catalogue():
    event = an_event()
    assert event.type == REGISTERED
    assert event.key == "810001234567"
    assert event.spec.topic == topics.REGISTRY
    assert event.time.tzinfo is not None
    assert event.id != an_event().id


def test_encode_decode_round_trip_keeps_every_attribute():
    event = an_event()
    record = encode(event)
    decoded = decode(record.headers, record.key, record.value)
    assert decoded.id == event.id
    assert decoded.type == event.type
    assert decoded.source == event.source
    assert decoded.subject == event.subject
    assert decoded.time == event.time
    assert decoded.payload == event.payload
    assert decoded.key == event.key
    assert decoded.payload.family_name == "Lefèvre"


def test_round_trip_keeps_a_non_utc_time_instant():
    event = replace(an_event(), time=datetime(2025, 3, 30, 2, 30, tzinfo=timezone(timedelta(hours=2))))
    record = encode(event)
    decoded = decode(record.headers, record.key, record.value)
    assert decoded.time == event.time
    assert decoded.time.utcoffset() == timedelta(hours=2)


def test_encoded_record_topic_key_and_value():
    event = an_event()
    record = encode(event)
    assert record.topic == topics.REGISTRY
    assert record.key == b"810001234567"
    assert json.loads(record.value) == event.payload.model_dump(mode="json")


def test_headers_are_cloudevents_binary_mode():
    event = an_event()
    headers = headers_of(encode(event))
    assert all(isinstance(v, bytes) for v in headers.values())
    assert set(headers) == {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_dataschema",
                            "ce_subject", "content-type"}
    assert headers["ce_id"] == event.id.encode()
    assert headers["ce_source"] == b"/cpts/registry"
    assert headers["ce_type"] == REGISTERED.encode()
    assert headers["ce_specversion"] == b"1.0"
    assert datetime.fromisoformat(headers["ce_time"].decode()) == event.time
    assert headers["ce_dataschema"] == f"urn:cpts:event-schema:{REGISTERED}".encode()
    assert headers["ce_subject"] == b"professional/810001234567"
    assert headers["content-type"] == b"application/json"


def test_event_without_subject_has_no_subject_header():
    event = new_event(registered(), source="/cpts/registry")
    record = encode(event)
    assert "ce_subject" not in headers_of(record)
    assert decode(record.headers, record.key, record.value).subject is None


def test_decode_without_kafka_key_falls_back_to_the_catalogue_key():
    record = encode(an_event())
    assert decode(record.headers, None, record.value).key == "810001234567"


@pytest.mark.parametrize(("headers", "key", "value"), [
    ([], None, b"garbage"),
    ([], None, None),
    ([("content-type", b"application/json")], b"k", b'{"a": 1}'),
    ([("ce_id", b"\xff\xfe"), ("ce_type", b"x")], None, b"{}"),
], ids=["no-headers", "tombstone", "no-ce-headers", "not-utf8"])
def test_decoding_garbage_raises_event_decode_error(headers, key, value):
    with pytest.raises(EventDecodeError):
        decode(headers, key, value)


@pytest.mark.parametrize(("header", "value"), [
    ("ce_specversion", b"0.3"),
    ("ce_time", b"yesterday"),
    ("ce_source", None),
    ("ce_type", None),
])
def test_bad_or_missing_envelope_attribute_raises_event_decode_error(header: str, value: bytes | None):
    record = encode(an_event())
    with pytest.raises(EventDecodeError):
        decode(with_headers(record, **{header: value}), record.key, record.value)


def test_unknown_event_type_raises_event_decode_error_naming_it():
    record = encode(an_event())
    with pytest.raises(EventDecodeError, match=r"fr\.cpts\.registry\.professional\.deleted\.v1"):
        decode(with_headers(record, ce_type=b"fr.cpts.registry.professional.deleted.v1"), record.key, record.value)


def test_schema_invalid_payload_names_the_field_but_not_the_value():
    record = encode(an_event())
    data = json.loads(record.value)
    data["idnps"] = "SECRET-7391"
    with pytest.raises(EventSchemaError) as caught:
        decode(record.headers, record.key, json.dumps(data).encode())
    message = str(caught.value)
    assert "idnps" in message
    assert "string_pattern_mismatch" in message
    assert "SECRET-7391" not in message


def test_unknown_payload_field_is_a_schema_error_without_its_value():
    record = encode(an_event())
    data = json.loads(record.value)
    data["nir"] = "1850775123456"
    with pytest.raises(EventSchemaError) as caught:
        decode(record.headers, record.key, json.dumps(data).encode())
    assert "nir: extra_forbidden" in str(caught.value)
    assert "1850775123456" not in str(caught.value)


@pytest.mark.parametrize("value", [b"[1, 2]", b'"a string"'], ids=["array", "string"])
def test_payload_that_is_not_a_json_object_is_a_schema_error(value):
    record = encode(an_event())
    with pytest.raises(EventSchemaError):
        decode(record.headers, record.key, value)


def test_empty_value_is_undecodable():
    record = encode(an_event())
    with pytest.raises(EventDecodeError):
        decode(record.headers, record.key, None)


def test_record_without_ce_id_raises_event_decode_error():
    record = encode(an_event())
    with pytest.raises(EventDecodeError):
        decode(with_headers(record, ce_id=None), record.key, record.value)


def test_value_that_is_not_json_raises_event_decode_error():
    record = encode(an_event())
    with pytest.raises(EventDecodeError):
        decode(record.headers, record.key, b"{not json")


# --- catalogue ----------------------------------------------------------------------------------------------


def test_catalogue_is_not_empty_and_holds_the_registry_event():
    assert REGISTERED in CATALOGUE
    assert CATALOGUE[REGISTERED].payload is ProfessionalRegistered


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_catalogue_type_is_versioned_and_on_a_known_topic(name: str):
    spec = CATALOGUE[name]
    assert re.search(r"\.v[1-9]\d*$", spec.name), spec.name
    assert spec.name == name
    assert spec.topic in topics.ALL
    assert spec.key_description in spec.payload.model_fields
    assert spec.payload.__event_type__ == name
    assert spec.description


def test_dlq_topic_names():
    assert [topics.dlq(t) for t in topics.ALL] == [f"{t}.dlq" for t in topics.ALL]


def test_event_type_without_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        event_type("fr.cpts.registry.professional.registered", topic=topics.REGISTRY, key="idnps",
                   description="x")


@pytest.mark.parametrize("name", ["fr.cpts.registry.professional.valid", "fr.cpts.registry.x.v"])
def test_event_type_with_a_non_numeric_version_is_refused(name: str):
    with pytest.raises(ValueError):
        event_type(name, topic=topics.REGISTRY, key="idnps", description="x")


def test_event_type_on_an_unknown_topic_is_refused():
    with pytest.raises(ValueError, match="topic"):
        event_type("fr.cpts.billing.invoice.sent.v1", topic="billing", key="idnps", description="x")


def test_event_type_registered_twice_or_keyed_by_a_missing_field_is_refused():
    with pytest.raises(ValueError, match="twice"):
        event_type(REGISTERED, topic=topics.REGISTRY, key="idnps", description="x")(ProfessionalRegistered)
    with pytest.raises(ValueError, match="no field"):
        event_type("fr.cpts.registry.test.keyless.v1", topic=topics.REGISTRY, key="rpps",
                   description="x")(ProfessionalRegistered)
    assert "fr.cpts.registry.test.keyless.v1" not in CATALOGUE


# --- generated schemas --------------------------------------------------------------------------------------


def test_committed_schemas_are_up_to_date():
    assert SCHEMAS.is_dir()
    assert stale(SCHEMAS) == [], "run `cpts schemas` and commit libs/events/schemas"


def test_stale_reports_changed_missing_and_orphan_files(tmp_path: Path):
    from cpts_events.schemas import write

    write(tmp_path)
    assert stale(tmp_path) == []
    (tmp_path / "asyncapi.yaml").write_text("changed\n")
    (tmp_path / "events" / f"{REGISTERED}.json").unlink()
    (tmp_path / "events" / "fr.cpts.gone.v1.json").write_text("{}\n")
    assert stale(tmp_path) == sorted(["asyncapi.yaml", f"events/{REGISTERED}.json", "events/fr.cpts.gone.v1.json"])


def test_payload_schemas_carry_the_dataschema_id():
    schemas = payload_schemas()
    assert set(schemas) == set(CATALOGUE)
    for name, schema in schemas.items():
        assert schema["$id"] == CATALOGUE[name].dataschema
        assert schema["title"] == name
        assert schema["additionalProperties"] is False


def test_asyncapi_has_a_channel_per_topic_and_per_dlq():
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    expected = set(topics.ALL) | {topics.dlq(t) for t in topics.ALL}
    assert set(document["channels"]) == expected
    for name, channel in document["channels"].items():
        assert channel["address"] == name


def test_asyncapi_message_references_resolve():
    document = asyncapi()
    messages = document["components"]["messages"]
    referenced = set()
    for topic in topics.ALL:
        for ref in document["channels"][topic]["messages"].values():
            referenced.add(ref["$ref"].removeprefix("#/components/messages/"))
    assert referenced == set(messages)
    assert {m["name"] for m in messages.values()} == set(CATALOGUE)
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        assert channel in document["channels"]
        assert document["channels"][channel]["messages"]
    message = messages[REGISTERED.replace(".", "-")]
    assert message["bindings"]["kafka"]["key"]["description"] == "idnps"
    assert set(message["headers"]["required"]) <= set(headers_of(encode(an_event())))


def test_committed_asyncapi_file_is_the_generated_document():
    committed = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert committed == asyncapi()
    assert render()["asyncapi.yaml"] == (SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8")


def test_our_binary_encoding_and_the_cloudevents_sdk_read_each_other():
    from cloudevents.core.bindings import kafka as ce_kafka
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    event = an_event()
    record = encode(event)
    read_by_sdk = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value), JSONFormat(),
        CloudEvent)
    assert read_by_sdk.get_id() == event.id and read_by_sdk.get_type() == event.type
    assert read_by_sdk.get_time() == event.time and read_by_sdk.get_subject() == event.subject
    assert read_by_sdk.get_data() == event.payload.model_dump(mode="json")
    assert read_by_sdk.get_datacontenttype() == "application/json"

    written_by_sdk = ce_kafka.to_binary(CloudEvent(attributes={
        "id": "e-1", "source": "/cpts/registry", "type": event.type, "specversion": "1.0", "time": event.time,
        "datacontenttype": "application/json"}, data=event.payload.model_dump(mode="json")), JSONFormat(),
        key_mapper=lambda _: event.key)
    back = decode(list(written_by_sdk.headers.items()), event.key.encode(), written_by_sdk.value)
    assert (back.id, back.payload, back.time) == ("e-1", event.payload, event.time)
