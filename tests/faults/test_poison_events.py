"""Poison messages on every topic a service consumes end in `<topic>.dlq` with a reason naming the problem
(never a value), once per consumer group, and the consumers go on: the valid event after them is applied."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from cpts_platform.kafka import new_producer
from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

SECRET = "DUPONT-1941-05-17"  # stands for a patient's identity: must never reach a reason
# kind -> (dlq_reason, words the detail must hold)
EXPECTED = {
    "not-json": ("undecodable", "not JSON"),
    "wrong-schema": ("schema-invalid", "missing"),
    "unknown-type": ("undecodable", "unknown event type"),
    "no-cloudevents-headers": ("undecodable", "missing CloudEvents headers"),
    "invalid-field-value": ("schema-invalid", "string_type"),
}


def read_topic(bootstrap: str, topic: str, *, at_least: int, timeout: float = 60.0) -> list:
    async def read() -> list:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        found: list = []
        try:
            deadline = time.monotonic() + timeout
            while len(found) < at_least and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += records
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def poisons(template) -> list[tuple[str, list[tuple[str, bytes]], bytes]]:
    """The five poison messages, from a real record of the topic."""
    headers = [(k, v) for k, v in template.headers if k != "ce_id"]

    def fresh(extra_headers):
        return [("ce_id", str(uuid.uuid4()).encode()), *extra_headers]

    payload = json.loads(template.value)
    field = next(name for name, value in payload.items() if isinstance(value, str))
    invalid = json.dumps(payload | {field: {"name": SECRET}}).encode()
    unknown = [(k, b"fr.cpts.unknown.thing.v1" if k == "ce_type" else v) for k, v in headers]
    return [
        ("not-json", fresh(headers), b"\xff" + SECRET.encode() + b" {not json"),
        ("wrong-schema", fresh(headers), json.dumps({"unexpected": SECRET}).encode()),
        ("unknown-type", fresh(unknown), template.value),
        ("no-cloudevents-headers", [("content-type", b"application/json")], template.value),
        ("invalid-field-value", fresh(headers), invalid),
    ]


def publish_everywhere(bootstrap: str, topic: str, messages) -> int:
    """Each message on every partition of the topic: whichever partition the next event takes, it is after."""

    async def send() -> int:
        producer = new_producer(bootstrap, client_id="faults-poisoner")
        await producer.start()
        sent = 0
        try:
            partitions = sorted(await producer.partitions_for(topic))
            for kind, headers, value in messages:
                for partition in partitions:
                    await (
                        await producer.send(
                            topic,
                            value=value,
                            key=b"poison",
                            partition=partition,
                            headers=[*headers, ("x_poison", kind.encode())],
                        )
                    )
                    sent += 1
        finally:
            await producer.stop()
        return sent

    return asyncio.run(send())


def test_poison_events_go_to_the_dlq_with_a_reason_and_the_consumers_go_on(stack, faults, topic_prefix):
    for name in ("registry", "snp-dispatch", "patient-matching", "indicators"):
        stack.start(name)
    stack.wait_ready(timeout=180)
    cpts = faults.CPTS
    admin = faults.auth(stack, "admin")
    regulator = faults.auth(stack, "regulator", departements=["69"])
    secretary = faults.auth(stack, "secretary", cpts_ids=[cpts])

    def care_request(n: int) -> str:
        response = httpx.post(
            f"{stack.url('snp-dispatch')}/care-requests",
            headers=regulator,
            json={
                "origin": "sas",
                "patient": {
                    "family_name": "Girard",
                    "given_name": "Léon",
                    "birth_date": f"194{n}-05-17",
                    "sex": "M",
                },
                "location": {"commune_insee": "69259"},
                "reason_category": "fever",
                "mt_none": True,
                "consent_mt_referral": True,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["request_id"]

    def enrol(n: int) -> None:
        response = wait_for(
            lambda: httpx.post(
                f"{stack.url('patient-matching')}/cpts/{cpts}/patients",
                headers=secretary,
                json={
                    "identity": {
                        "birth_name": "MARTIN",
                        "first_names": "Jeanne",
                        "birth_date": f"195{n}-02-03",
                        "sex": "F",
                    },
                    "commune_insee": "69259",
                    "consent": True,
                },
            ),
            lambda r: r.status_code == 201,
            timeout=30,
        )
        assert response.status_code == 201, response.text

    # One real event on each consumed topic: the templates of the poison messages.
    created = httpx.post(
        f"{stack.url('registry')}/cpts",
        headers=admin,
        json={"cpts_id": cpts, "name": "CPTS test", "communes": ["69259", "69290"]},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    care_request(1)
    enrol(1)

    groups = faults.consumer_groups()
    consumed = sorted({t for _, subscription, _ in groups for t in subscription.topics})
    sent = {}
    for topic in consumed:
        template = wait_for(
            lambda t=topic: read_topic(stack.bootstrap, topic_prefix + t, at_least=1, timeout=5),
            lambda found: found,
            timeout=30,
        )[0]
        sent[topic] = publish_everywhere(stack.bootstrap, topic_prefix + topic, poisons(template))

    # The valid events after them.
    idnps = "810100000011"
    registered = httpx.post(
        f"{stack.url('registry')}/professionals",
        headers=admin,
        json={
            "idnps": idnps,
            "family_name": "Morel",
            "given_name": "Camille",
            "profession_code": "10",
            "specialty_code": "SM54",
            "commune_insee": "69259",
            "cpts_ids": [cpts],
        },
    )
    assert registered.status_code == 201, registered.text
    care_request(2)
    enrol(2)

    dead_lettered = {}
    for topic in consumed:
        readers = [subscription.group_id for _, subscription, _ in groups if topic in subscription.topics]
        expected = sent[topic] * len(readers)
        records = read_topic(stack.bootstrap, topic_prefix + topic + ".dlq", at_least=expected)
        assert len(records) == expected, (topic, len(records), expected)
        dead_lettered[topic] = len(records)
        by_group: dict[str, list[str]] = {}
        for record in records:
            headers = {k: v.decode(errors="replace") for k, v in record.headers}
            kind = headers["x_poison"]
            reason, words = EXPECTED[kind]
            assert headers["dlq_reason"] == reason, (kind, headers)
            assert words in headers["dlq_detail"], (kind, headers["dlq_detail"])
            assert SECRET not in headers["dlq_detail"] and "DUPONT" not in headers["dlq_detail"]
            assert headers["dlq_original_topic"] == topic_prefix + topic
            by_group.setdefault(headers["dlq_consumer_group"].removeprefix(topic_prefix), []).append(kind)
        assert sorted(by_group) == sorted(readers)
        for kinds in by_group.values():
            assert sorted(set(kinds)) == sorted(EXPECTED)

    coordinator = faults.auth(stack, "coordinator", cpts_ids=[cpts])
    wait_for(
        lambda: httpx.get(f"{stack.url('snp-dispatch')}/effecteurs/{idnps}", headers=regulator),
        lambda r: r.status_code == 200,
    )
    wait_for(
        lambda: httpx.get(f"{stack.url('patient-matching')}/gps/{idnps}", headers=coordinator),
        lambda r: r.status_code == 200,
    )
    wait_for(
        lambda: httpx.get(
            f"{stack.url('indicators')}/indicators/cpts/{cpts}/professionals", headers=coordinator
        ),
        lambda r: r.json().get("professionals") == 1,
    )
    indicators = stack.database_urls["indicators"]
    for event_type in ("fr.cpts.snp.care_request.received.v1", "fr.cpts.matching.patient.enrolled.v1"):
        wait_for(
            lambda t=event_type: faults.scalar(
                indicators,
                "SELECT count(*) FROM processed_event WHERE event_type = :t AND consumer_group = :g",
                t=t,
                g=topic_prefix + "indicators.facts",
            ),
            lambda n: n == 2,
            timeout=30,
        )
    stack.wait_ready(timeout=10)
    faults.figures(
        "poison events",
        database=stack.database_urls["registry"].split(":")[0],
        poison_sent=sent,
        dead_lettered=dead_lettered,
        kinds=len(EXPECTED),
        consumer_groups=len(groups),
    )
