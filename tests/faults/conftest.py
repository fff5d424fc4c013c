"""Fault suites: helpers shared by the tests of this directory (a demo territory, a mixed load whose
acknowledged writes are the ground truth, database and broker probes). They come as fixtures, since test
directories are not packages (`--import-mode=importlib`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpts_platform.testing import wait_for

CPTS = "690049999"
COMMUNES = ["69266", "69259", "69290", "69286", "69029", "69256", "69275"]


def figures(name: str, **values) -> None:
    """One line of measured figures in the test's output (`-s` or the captured stdout of a failure)."""
    print(f"[faults] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def query(url: str, sql: str, **params) -> list[tuple]:
    async def run() -> list[tuple]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in (await connection.execute(sa.text(sql), params)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def scalar(url: str, sql: str, **params):
    return query(url, sql, **params)[0][0]


def auth(stack, role: str, **scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(role, **scope)}"}


def pending_outbox(stack, service: str) -> int:
    return scalar(
        stack.database_urls[service], "SELECT count(*) FROM outbox_event WHERE published_at IS NULL"
    )


def wait_outboxes_drained(stack, services, timeout: float = 120.0) -> None:
    for service in services:
        wait_for(lambda s=service: pending_outbox(stack, s), lambda n: n == 0, timeout=timeout)


def expected_processed(stack, subscription, producers) -> int:
    """Events of the producers' outboxes on the subscription's topics that it has a handler for."""
    types = sorted(subscription.handlers)
    marks = ", ".join(f":t{i}" for i in range(len(types)))
    topic_marks = ", ".join(f":p{i}" for i in range(len(subscription.topics)))
    params = {f"t{i}": t for i, t in enumerate(types)} | {
        f"p{i}": t for i, t in enumerate(subscription.topics)
    }
    return sum(
        scalar(
            stack.database_urls[p],
            f"SELECT count(DISTINCT event_id) FROM outbox_event WHERE "
            f"event_type IN ({marks}) AND topic IN ({topic_marks})",
            **params,
        )
        for p in producers
    )


def processed(stack, service: str, group: str) -> int:
    return scalar(
        stack.database_urls[service],
        "SELECT count(*) FROM processed_event WHERE consumer_group = :g",
        g=stack.env["CPTS_KAFKA_TOPIC_PREFIX"] + group,
    )


def consumer_groups():
    """Every consumer group of the platform: (consuming service, subscription, producing services)."""
    from cpts_indicators.consumers import SUBSCRIPTIONS as INDICATORS
    from cpts_patient_matching.consumers import SUBSCRIPTIONS as MATCHING
    from cpts_snp_dispatch.consumers import SUBSCRIPTIONS as DISPATCH

    producer_of = {
        "registry": "registry",
        "snp-dispatch": "snp-dispatch",
        "patient-matching": "patient-matching",
    }
    groups = []
    for service, subscriptions in (
        ("snp-dispatch", DISPATCH),
        ("patient-matching", MATCHING),
        ("indicators", INDICATORS),
    ):
        for subscription in subscriptions:
            groups.append((service, subscription, sorted({producer_of[t] for t in subscription.topics})))
    return groups


def wait_consumers_caught_up(stack, timeout: float = 120.0) -> dict[str, int]:
    """Every group has applied exactly the events its producers committed (none lost, none twice)."""
    counts = {}
    for service, subscription, producers in consumer_groups():
        expected = expected_processed(stack, subscription, producers)
        wait_for(
            lambda s=service, g=subscription.group_id: processed(stack, s, g),
            lambda n, expected=expected: n >= expected,
            timeout=timeout,
        )
        counts[subscription.group_id] = expected
    time.sleep(2)  # anything applied twice would show up now
    for service, subscription, producers in consumer_groups():
        assert processed(stack, service, subscription.group_id) == counts[subscription.group_id], subscription
    return counts


def indicator_values(base_url: str, headers: dict, cpts: str = CPTS, at: str | None = None) -> dict:
    params = {"period": "month"} | ({"at": at} if at else {})
    response = httpx.get(f"{base_url}/indicators/cpts/{cpts}", headers=headers, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return {
        i["indicator_id"]: (
            i["value"],
            [(b["attribute"], [(c["category"], c["value"]) for c in b["cells"]]) for b in i["breakdowns"]],
        )
        for i in response.json()["indicators"]
    }


def seed_territory(stack, *, rows: int = 400) -> list[dict]:
    """A generated RPPS extract imported, the demo CPTS on its communes with members, SAS participants and MT
    capacities (through the registry's API); returns snp-dispatch's effecteurs with a practice site."""
    from cpts_cli import demo

    extract = stack.var_dir / "extract.txt"
    cli = [sys.executable, "-m", "cpts_cli.main", "registry"]
    subprocess.run(
        [*cli, "generate-demo", str(extract), "--rows", str(rows), "--departement", "69", "--seed", "1"],
        check=True,
        env=stack.env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [*cli, "import-rpps", str(extract), "--departement", "69", "--show", "0"],
        check=True,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seeded = demo.seed(stack.url("registry"), stack.token("admin"))
    assert seeded["sas_participants"] >= 3, seeded
    regulator = auth(stack, "regulator", departements=["69"])

    def effecteurs():
        return httpx.get(
            f"{stack.url('snp-dispatch')}/effecteurs",
            headers=regulator,
            timeout=30,
            params={"cpts_id": CPTS, "sas_participant": True, "limit": 1000},
        ).json()

    found = wait_for(effecteurs, lambda e: len(e) >= seeded["sas_participants"], timeout=60)
    wait_for(
        lambda: httpx.get(
            f"{stack.url('patient-matching')}/cpts/{CPTS}/patients",
            headers=auth(stack, "coordinator", cpts_ids=[CPTS]),
            params={"limit": 1},
        ),
        lambda r: r.status_code == 200,
        timeout=60,
    )
    return [e for e in found if e["sites"]]


@dataclass
class Ledger:
    """What the load sent: acknowledged (2xx) writes, and writes whose answer was lost (service killed)."""

    slots: dict[str, str] = field(default_factory=dict)  # slot_id -> start
    requests: list[str] = field(default_factory=list)
    referred_requests: set[str] = field(default_factory=set)
    appointments: dict[str, str] = field(default_factory=dict)  # appointment_id -> slot_id
    patients: dict[str, str] = field(default_factory=dict)  # patient_id -> outcome (new or existing)
    proposals: int = 0
    rounds: int = 0
    searches: int = 0
    unknown: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # op:status (0: service unreachable)
    iterations: int = 0

    def lost(self, op: str) -> None:
        self.unknown[op] = self.unknown.get(op, 0) + 1

    def refuse(self, op: str, status: int) -> None:
        key = f"{op}:{status}"
        self.refused[key] = self.refused.get(key, 0) + 1


class MixedLoad:
    """One regulator's, secretary's and coordinator's day, request after request: slot publications, care
    requests, searches, holds and bookings, enrolments and matching rounds. A request whose answer is lost
    (the service was killed) is recorded as unknown and not retried."""

    def __init__(
        self, stack, effecteurs: list[dict], *, iterations: int, start: datetime | None = None
    ) -> None:
        self.stack = stack
        self.effecteurs = effecteurs
        self.iterations = iterations
        self.ledger = Ledger()
        self.stop = False
        self.error: BaseException | None = None
        # Slots a few hours ahead, in the current month, never overlapping (15 min each, 20 min apart).
        self.first_start = (start or datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
        self.regulator = auth(stack, "regulator", departements=["69"])
        self.secretary = auth(stack, "secretary", cpts_ids=[CPTS])
        self.coordinator = auth(stack, "coordinator", cpts_ids=[CPTS])
        self.doctors = {e["idnps"]: auth(stack, "professional", idnps=e["idnps"]) for e in effecteurs}

    def run(self) -> None:
        try:
            with httpx.Client(timeout=30) as client:
                for i in range(self.iterations):
                    if self.stop:
                        break
                    self.step(client, i)
                    self.ledger.iterations += 1
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            self.error = exc

    def _call(self, client: httpx.Client, op: str, method: str, service: str, path: str, **kwargs):
        try:
            response = client.request(method, f"{self.stack.url(service)}{path}", **kwargs)
        except httpx.ConnectError:  # the service is down: the request never reached it
            self.ledger.refuse(op, 0)
            time.sleep(0.2)
            return None
        except httpx.TransportError:  # sent, but the answer was lost: it may or may not have been applied
            if method != "GET":
                self.ledger.lost(op)
            time.sleep(0.2)
            return None
        if response.status_code >= 300:
            self.ledger.refuse(op, response.status_code)
            return None
        return response

    def step(self, client: httpx.Client, i: int) -> None:
        effecteur = self.effecteurs[i % len(self.effecteurs)]
        start = self.first_start + timedelta(minutes=20 * i)
        slot = self._call(
            client,
            "slot",
            "POST",
            "snp-dispatch",
            "/slots",
            headers=self.doctors[effecteur["idnps"]],
            json={
                "idnps": effecteur["idnps"],
                "site_id": effecteur["sites"][0]["site_id"],
                "slots": [{"start": start.isoformat(), "end": (start + timedelta(minutes=15)).isoformat()}],
            },
        )
        slot_id = None
        if slot is not None:
            slot_id = slot.json()[0]["slot_id"]
            self.ledger.slots[slot_id] = start.isoformat()
        referred = i % 2 == 0
        request = self._call(
            client,
            "care_request",
            "POST",
            "snp-dispatch",
            "/care-requests",
            headers=self.regulator,
            json={
                "origin": "sas",
                "patient": {
                    "family_name": "Girard",
                    "given_name": "Léon",
                    "birth_date": (date(1950, 1, 1) + timedelta(days=i)).isoformat(),
                    "sex": "M",
                },
                "location": {"commune_insee": COMMUNES[i % len(COMMUNES)]},
                "reason_category": "fever",
                "mt_none": referred,
                "consent_mt_referral": referred,
            },
        )
        request_id = None
        if request is not None:
            request_id = request.json()["request_id"]
            self.ledger.requests.append(request_id)
            if (
                self._call(
                    client,
                    "search",
                    "GET",
                    "snp-dispatch",
                    f"/care-requests/{request_id}/candidates",
                    headers=self.regulator,
                )
                is not None
            ):
                self.ledger.searches += 1
        if slot_id and request_id and i % 3 != 2:
            hold = self._call(
                client,
                "hold",
                "POST",
                "snp-dispatch",
                f"/slots/{slot_id}/hold",
                headers=self.regulator,
                json={"request_id": request_id},
            )
            if hold is not None:
                booked = self._call(
                    client,
                    "appointment",
                    "POST",
                    "snp-dispatch",
                    "/appointments",
                    headers=self.regulator,
                    json={"slot_id": slot_id, "request_id": request_id, "hold_id": hold.json()["hold_id"]},
                )
                if booked is not None:
                    appointment_id = booked.json()["appointment_id"]
                    self.ledger.appointments[appointment_id] = slot_id
                    # Seen without a médecin traitant, consenting: referred to the CPTS's list.
                    if (
                        referred
                        and self._call(
                            client,
                            "outcome",
                            "POST",
                            "snp-dispatch",
                            f"/appointments/{appointment_id}/outcome",
                            headers=self.regulator,
                            json={"outcome": "fulfilled"},
                        )
                        is not None
                    ):
                        self.ledger.referred_requests.add(request_id)
        enrolled = self._call(
            client,
            "patient",
            "POST",
            "patient-matching",
            f"/cpts/{CPTS}/patients",
            headers=self.secretary,
            json={
                "identity": {
                    "birth_name": "MARTIN",
                    "first_names": "Jeanne",
                    "birth_date": (date(1940, 1, 1) + timedelta(days=7 * i)).isoformat(),
                    "sex": "F",
                },
                "commune_insee": COMMUNES[i % len(COMMUNES)],
                "consent": True,
                "priority": {"ald": i % 4 == 0},
            },
        )
        if enrolled is not None:
            body = enrolled.json()
            self.ledger.patients[body["patient"]["patient_id"]] = body["outcome"]
        if i % 10 == 9:
            matching_round = self._call(
                client, "round", "POST", "patient-matching", f"/cpts/{CPTS}/rounds", headers=self.coordinator
            )
            if matching_round is not None:
                self.ledger.rounds += 1
                self.ledger.proposals += matching_round.json()["proposals"]


def long_suite(stack) -> None:
    """The long suites run on one database in the default test run (PostgreSQL when it is reachable, else
    SQLite) and on both with `CPTS_FAULTS_FULL=1`."""
    from cpts_platform.testing import _pg

    if os.environ.get("CPTS_FAULTS_FULL") == "1":
        return
    if stack.database_urls["registry"].startswith("sqlite") and _pg():
        pytest.skip(
            "long fault suite: PostgreSQL only in the default run (CPTS_FAULTS_FULL=1 for SQLite too)"
        )


@pytest.fixture
def faults():
    """The helpers of the fault suites."""
    return SimpleNamespace(
        CPTS=CPTS,
        COMMUNES=COMMUNES,
        figures=figures,
        query=query,
        scalar=scalar,
        auth=auth,
        pending_outbox=pending_outbox,
        wait_outboxes_drained=wait_outboxes_drained,
        wait_consumers_caught_up=wait_consumers_caught_up,
        consumer_groups=consumer_groups,
        indicator_values=indicator_values,
        seed_territory=seed_territory,
        MixedLoad=MixedLoad,
        long_suite=long_suite,
        outage_seconds=float(os.environ.get("CPTS_FAULTS_BROKER_OUTAGE_SECONDS", "30")),
    )


@pytest.fixture
def unmasked(stack):
    """No small-cell masking: the suites compare every count, even 1 to 5."""
    stack.env["CPTS_INDICATORS_SMALL_CELL_THRESHOLD"] = "1"
    return stack
