"""No patient identity outside the records that need it.

Patients with distinctive names, birth dates, NIRs and phone numbers go through every journey of the platform,
each service running as its own process on the real broker: a SAS regulator books for one and records that
she was seen (so she is enrolled for a médecin traitant), a CPTS secretary closes another's request without a
slot, the guichet enrols a third, a CPAM file brings a fourth, a round proposes them to GPs and a GP accepts.
Bad input carrying identities is sent too. Then every log line, every metric, every dead-letter message and
every message of the ARS topic is scanned: none of the identities may appear, in any usual spelling.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from cpts_cli import demo
from cpts_platform.identifiers import nir_key
from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

SERVICES = ("registry", "snp-dispatch", "patient-matching", "indicators")


def nir(sex: str, born: date, place: str, order: str) -> str:
    body = f"{sex}{born:%y%m}{place}{order}"
    return body + nir_key(body)


@dataclass(frozen=True)
class Person:
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    phone: str
    nir: str | None = None

    def needles(self) -> set[str]:
        """Every spelling in which this identity could leak."""
        found = {self.family_name, self.given_name, self.phone, self.birth_date.isoformat(),
                 f"{self.birth_date:%d/%m/%Y}", f"{self.birth_date:%Y%m%d}", f"{self.birth_date:%d%m%Y}"}
        if self.nir:
            found |= {self.nir, self.nir[:13], f"{self.nir[0]} {self.nir[1:3]} {self.nir[3:5]} {self.nir[5:7]}"}
        return found


ALBA = Person("Quenouillard", "Ysoline", date(1937, 2, 11), "F", "0671932845",
              nir("2", date(1937, 2, 11), "69266", "481"))
BRUNO = Person("Vauquelinot", "Aristide", date(1952, 9, 23), "M", "0798123456")
CELIA = Person("Bergamasquier", "Philomena", date(1944, 12, 7), "F", "0644557788",
               nir("2", date(1944, 12, 7), "69259", "317"))
DORIAN = Person("Oxenbridgeau", "Theodorin", date(1981, 6, 30), "M", "0733221199",
                nir("1", date(1981, 6, 30), "69266", "202"))
PEOPLE = (ALBA, BRUNO, CELIA, DORIAN)


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    return sorted({needle for person in PEOPLE for needle in person.needles() if needle.lower() in lowered})


def read_topics(bootstrap: str, names: list[str]) -> dict[str, list[tuple[dict[str, bytes], bytes]]]:
    """Every message of the named topics: (headers, value)."""

    async def read() -> dict[str, list[tuple[dict[str, bytes], bytes]]]:
        consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    group_id=None, enable_auto_commit=False)
        await consumer.start()
        found: dict[str, list] = {name: [] for name in names}
        try:
            idle = 0
            while idle < 3:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                idle = 0 if batches else idle + 1
                for partition, messages in batches.items():
                    found[partition.topic].extend((dict(m.headers), m.value or b"") for m in messages)
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def send(bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=b"poison", headers=headers)
        finally:
            await producer.stop()

    asyncio.run(produce())


def existing_topics(bootstrap: str, prefix: str) -> set[str]:
    async def list_topics() -> set[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            return {t for t in await consumer.topics() if t.startswith(prefix)}
        finally:
            await consumer.stop()

    return asyncio.run(list_topics())


def care_request(person: Person, **changes) -> dict:
    patient = {"family_name": person.family_name, "given_name": person.given_name,
               "birth_date": person.birth_date.isoformat(), "sex": person.sex, "phone": person.phone}
    if person.nir:
        patient["ins_nir"] = person.nir
    return {"patient": patient, "location": {"commune_insee": "69266"}, "reason_category": "fever",
            "reason_text": "Fièvre depuis hier", "urgency": "24h", "mt_none": True, **changes}


def enrolment(person: Person) -> dict:
    identity = {"birth_name": person.family_name, "first_names": person.given_name,
                "birth_date": person.birth_date.isoformat(), "sex": person.sex, "phone": person.phone}
    if person.nir:
        identity["ins_nir"] = person.nir
    return {"identity": identity, "commune_insee": "69266", "priority": {"ald": True}, "consent": True}


def test_no_patient_identity_reaches_logs_metrics_dead_letters_or_the_ars_stream(stack, tmp_path, topic_prefix):
    stack.env["CPTS_LOG_LEVEL"] = "INFO"  # what production logs
    stack.env["CPTS_INDICATORS_SNAPSHOT_INTERVAL_SECONDS"] = "0.5"
    for name in SERVICES:
        stack.start(name)
    stack.wait_ready(*SERVICES, timeout=180)
    admin_token = stack.token("admin")
    admin = {"Authorization": f"Bearer {admin_token}"}
    registry, dispatch = stack.url("registry"), stack.url("snp-dispatch")
    matching, indicators = stack.url("patient-matching"), stack.url("indicators")

    # The territory: an RPPS extract, the demo CPTS with members, SAS participants and GPs taking patients.
    extract = tmp_path / "extract.txt"
    cli = [sys.executable, "-m", "cpts_cli.main"]
    subprocess.run([*cli, "registry", "generate-demo", str(extract), "--rows", "600", "--departement", "69",
                    "--seed", "1"], check=True, env=stack.env, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "registry", "import-rpps", str(extract), "--departement", "69", "--show", "0"],
                   check=True, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seeded = demo.seed(registry, admin_token)
    assert seeded["sas_participants"] and seeded["mt_capacities"], seeded
    assert demo.seed_slots(dispatch, admin_token, days=3)["slots"] > 0
    cpts = demo.DEMO_CPTS_ID

    # A SAS regulator books for Alba, who has no médecin traitant and consents to be referred for one.
    regulator = {"Authorization": f"Bearer {stack.token('regulator', departements=['69'])}"}
    wrong_key = care_request(ALBA, origin="sas")
    wrong_key["patient"]["ins_nir"] = ALBA.nir[:13] + ("00" if ALBA.nir[13:] != "00" else "01")
    refused = httpx.post(f"{dispatch}/care-requests", headers=regulator, json=wrong_key)
    assert refused.status_code == 422 and not leaks(refused.text), refused.text
    malformed = care_request(ALBA, origin="sas")
    malformed["patient"]["birth_date"] = f"{ALBA.birth_date:%d/%m/%Y}"
    refused = httpx.post(f"{dispatch}/care-requests", headers=regulator, json=malformed)
    assert refused.status_code == 422 and not leaks(refused.text), refused.text

    request = httpx.post(f"{dispatch}/care-requests", headers=regulator,
                         json=care_request(ALBA, origin="sas", consent_mt_referral=True))
    assert request.status_code == 201, request.text
    request_id = request.json()["request_id"]
    assert httpx.get(f"{dispatch}/care-requests/{request_id}", headers=regulator).status_code == 200
    cards = httpx.get(f"{dispatch}/care-requests/{request_id}/candidates", headers=regulator).json()["cards"]
    slot = next(s for card in cards for day in card["slots"].values() for s in day if s["bookable"])
    hold = httpx.post(f"{dispatch}/slots/{slot['slot_id']}/hold", headers=regulator,
                      json={"request_id": request_id})
    assert hold.status_code == 201, hold.text
    booked = httpx.post(f"{dispatch}/appointments", headers=regulator, json={
        "slot_id": slot["slot_id"], "request_id": request_id, "hold_id": hold.json()["hold_id"]})
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    seen = httpx.post(f"{dispatch}/appointments/{appointment['appointment_id']}/outcome",
                      headers={"Authorization": f"Bearer {stack.token('professional', idnps=appointment['idnps'])}"},
                      json={"outcome": "fulfilled"})
    assert seen.status_code == 200, seen.text

    # A CPTS secretary finds nothing that suits Bruno (a home visit tonight) and orients him.
    secretary = {"Authorization": f"Bearer {stack.token('secretary', cpts_ids=[cpts])}"}
    request = httpx.post(f"{dispatch}/care-requests", headers=secretary,
                         json=care_request(BRUNO, origin="cpts_phone", needs_home_visit=True, urgency="same_day"))
    assert request.status_code == 201, request.text
    closed = httpx.post(f"{dispatch}/care-requests/{request.json()['request_id']}/close", headers=secretary,
                        json={"orientation": "pdsa", "reason": "no_slot_for_modality"})
    assert closed.status_code == 200, closed.text

    # The guichet enrols Célia; a CPAM file brings Dorian (and a line with a bad NIR, reported by number only).
    enrolled = httpx.post(f"{matching}/cpts/{cpts}/patients", headers=secretary, json=enrolment(CELIA))
    assert enrolled.status_code == 201, enrolled.text
    bad_nir = enrolment(CELIA)
    bad_nir["identity"]["ins_nir"] = CELIA.nir[:14]
    refused = httpx.post(f"{matching}/cpts/{cpts}/patients", headers=secretary, json=bad_nir)
    assert refused.status_code == 422 and not leaks(refused.text), refused.text
    listing = tmp_path / "cpam.csv"
    listing.write_text(
        "nom_naissance;prenoms;date_naissance;sexe;commune_insee;nir;telephone;ald;consentement\n"
        f"{DORIAN.family_name};{DORIAN.given_name};{DORIAN.birth_date:%d/%m/%Y};M;69266;{DORIAN.nir};"
        f"{DORIAN.phone};oui;oui\n"
        f"{DORIAN.family_name};{DORIAN.given_name};31/02/1981;M;69266;{DORIAN.nir[:-1]};{DORIAN.phone};non;oui\n",
        encoding="utf-8")
    imported = subprocess.run([*cli, "matching", "import-patients", str(listing), "--cpts", cpts],
                              env=stack.env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert not leaks(imported.stdout + imported.stderr), imported.stdout + imported.stderr

    # Alba reaches the list from snp-dispatch's event; a round proposes the waiting patients; a GP accepts.
    coordinator = {"Authorization": f"Bearer {stack.token('coordinator', cpts_ids=[cpts])}"}

    def listed():
        return httpx.get(f"{matching}/cpts/{cpts}/patients", headers=coordinator, params={"limit": 100}).json()

    wait_for(listed, lambda page: page["total"] >= 3, timeout=30)
    wait_for(lambda: httpx.get(f"{matching}/gps/{appointment['idnps']}", headers=coordinator),
             lambda r: r.status_code == 200, timeout=30)
    round_ = httpx.post(f"{matching}/cpts/{cpts}/rounds", headers=coordinator)
    assert round_.status_code == 201 and round_.json()["proposals"] >= 1, round_.text
    proposals = httpx.get(f"{matching}/cpts/{cpts}/proposals", headers=coordinator,
                          params={"status": "pending"}).json()["items"]
    proposal = proposals[0]
    gp = {"Authorization": f"Bearer {stack.token('professional', idnps=proposal['idnps'])}"}
    accepted = httpx.post(f"{matching}/proposals/{proposal['proposal_id']}/accept", headers=gp)
    assert accepted.status_code == 200, accepted.text

    # The indicators count all of it, and the ARS stream carries their snapshots.
    coordinator_view = wait_for(
        lambda: httpx.get(f"{indicators}/indicators/cpts/{cpts}", headers=coordinator,
                          params={"period": "year"}),
        lambda r: r.status_code == 200 and any(
            v["indicator_id"] == "mt.patients.mt_declared" and (v["masked"] or v["value"])
            for v in r.json()["indicators"]), timeout=60)
    assert not leaks(coordinator_view.text)
    for export in ("export.csv", "export.xlsx"):
        response = httpx.get(f"{indicators}/indicators/cpts/{cpts}/{export}", headers=coordinator,
                             params={"period": "year"})
        assert response.status_code == 200 and not leaks(response.content.decode("latin-1")), export
    rebuilt = httpx.post(f"{indicators}/indicators/snapshots/rebuild", headers=admin)
    assert rebuilt.status_code == 200, rebuilt.text

    ars_topic = f"{topic_prefix}indicators"
    stream = wait_for(lambda: read_topics(stack.bootstrap, [ars_topic])[ars_topic], lambda found: len(found) > 0,
                      timeout=30)
    for headers, value in stream:
        text = value.decode("utf-8", "replace") + " ".join(v.decode("utf-8", "replace") for v in headers.values())
        assert not leaks(text), f"ARS stream: {leaks(text)}"

    # The scan does see identities where they belong: the event that enrols Alba for a médecin traitant.
    snp_topic = f"{topic_prefix}snp-dispatch"
    snp_messages = read_topics(stack.bootstrap, [snp_topic])[snp_topic]
    headers, value = next((h, v) for h, v in snp_messages if ALBA.family_name in leaks(v.decode()))
    # A damaged copy of that event (impossible birth date) goes to the dead letters: the reason names the field.
    poison = json.loads(value)
    poison["patient"]["birth_date"] = f"{ALBA.birth_date:%Y}-02-30"
    poison_headers = [(k, uuid.uuid4().hex.encode() if k == "ce_id" else v) for k, v in headers.items()]
    send(stack.bootstrap, snp_topic, json.dumps(poison).encode(), poison_headers)
    originals = {v for _, v in snp_messages} | {json.dumps(poison).encode()}

    dlq_topic = f"{snp_topic}.dlq"
    wait_for(lambda: read_topics(stack.bootstrap, [dlq_topic])[dlq_topic], lambda found: len(found) > 0, timeout=30)
    dead_letters = sorted(t for t in existing_topics(stack.bootstrap, topic_prefix) if t.endswith(".dlq"))
    scanned_dlq = 0
    for topic, messages in read_topics(stack.bootstrap, dead_letters).items():
        for headers, value in messages:
            scanned_dlq += 1
            described = " ".join(v.decode("utf-8", "replace") for v in headers.values())
            assert not leaks(described), f"{topic} headers: {leaks(described)}"
            # The dead letter keeps the original bytes for reprocessing: no new copy of an identity is made.
            assert value in originals or not leaks(value.decode("utf-8", "replace")), f"{topic}: {leaks(value)}"
            if value == json.dumps(poison).encode():
                assert "birth_date" in described, described
    assert scanned_dlq >= 1

    scanned_metrics = 0
    for name in SERVICES:
        metrics = httpx.get(f"{stack.url(name)}/metrics")
        assert metrics.status_code == 200
        scanned_metrics += metrics.text.count("\n")
        assert not leaks(metrics.text), f"{name} metrics: {leaks(metrics.text)}"

    stack.stop()  # flush every log line
    scanned_lines = 0
    for name in SERVICES:
        for number, line in enumerate(stack.log(name).splitlines(), start=1):
            scanned_lines += 1
            assert not leaks(line), f"{name}.log line {number}: {leaks(line)}"
    assert scanned_lines > 50, "the services logged their requests and events"
    print(f"\nprivacy scan: {scanned_lines} log lines, {scanned_metrics} metric lines, {scanned_dlq} dead letters,"
          f" {len(stream)} ARS messages; {sum(len(p.needles()) for p in PEOPLE)} identity spellings, none found")
