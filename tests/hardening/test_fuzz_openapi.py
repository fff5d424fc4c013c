"""Property-based fuzzing of every service's OpenAPI document with schemathesis, in-process.

Each service runs as its ASGI app with its lifespan (migrations, outbox relay, consumers) on the test database
(PostgreSQL when reachable, else SQLite; `CPTS_TEST_POSTGRES=off` forces SQLite) and the test broker, with a
little seeded data (a CPTS, professionals, a slot, a care request, a patient) so that generated requests reach
past the "not found" answers. Every operation of the document is called with valid tokens of every role, each
scoped to the seeded CPTS, département or professional, with generated valid and invalid inputs, and every
answer must hold:

- no 5xx;
- a status code the document lists for the operation, with the documented content type;
- a body that validates against the documented schema (problem+json 4xx included).

The default run is small and derandomized (the same cases every time, a few minutes for every service);
`CPTS_FUZZ_EXAMPLES=500 pytest tests/hardening/test_fuzz_openapi.py` is the long run. Each test prints its
figures (operations × roles × cases, failures) and fails with one reproducible example per distinct failure.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cpts_platform.auth import LocalIssuer
from cpts_platform.db import Database
from cpts_platform.migrations import upgrade
from cpts_platform.service import ServiceDefinition, create_app
from cpts_platform.testing import _pg, create_postgres_database, drop_postgres_database, settings_for

# schemathesis draws some values with `random` inside its strategies; derandomized runs stay reproducible.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

EXAMPLES = int(os.environ.get("CPTS_FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

CPTS = "690049999"
GP = "810100000001"
OTHER_GP = "810100000002"
ROLES: dict[str, dict[str, Any]] = {
    "admin": {},
    "regulator": {"departements": ["69"]},
    "secretary": {"cpts_ids": [CPTS]},
    "coordinator": {"cpts_ids": [CPTS]},
    "professional": {"idnps": GP},
    "ars": {"departements": ["69"]},
}
PATIENT = {"family_name": "Lambert", "given_name": "Rose", "birth_date": "1950-03-02", "sex": "F",
           "phone": "0612345678"}


def _at(hours: float) -> str:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    return start.isoformat()


@dataclass
class Target:
    """A service under fuzzing: its app, a client on it, and the identifiers its seeded data answers to."""

    app: Any
    client: asgi.ASGIClient
    issuer: LocalIssuer
    known: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        token = self.issuer.mint(subject=f"fuzz-{role}", roles=[role], **ROLES[role])
        return {"Authorization": f"Bearer {token}"}

    def post(self, path: str, role: str, body: dict | None = None) -> dict:
        response = self.client.post(path, json=body, headers=self.headers(role))
        assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
        return response.json()


@dataclass
class Report:
    service: str
    cases: Counter = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def summary(self, operations: int, seconds: float) -> str:
        lines = [(f"{self.service}: {operations} operations × {len(ROLES)} roles, "
                  f"{sum(self.cases.values())} cases, {len(self.failures)} distinct failures, "
                  f"{seconds:.1f} s")]
        lines += [f"  {role}: {count} cases" for role, count in sorted(self.cases.items())]
        return "\n".join(lines)

    def describe_failures(self) -> str:
        """One example per operation and kind of failure, with the roles that met it."""
        grouped: dict[tuple[str, str], tuple[list[str], str]] = {}
        for (operation, role, kind), detail in self.failures.items():
            grouped.setdefault((operation, kind), ([], detail))[0].append(role)
        return "\n\n".join(f"{operation} as {', '.join(roles)}:\n{detail}"
                            for (operation, _), (roles, detail) in sorted(grouped.items()))


# Seeding: rows of the read models straight into the database before the app starts (as the services' own
# tests do), then data through the API itself once it runs.

async def _prepare(definition: ServiceDefinition, url: str, rows: Callable[[], list]) -> None:
    database = Database(url, definition.tables)
    try:
        await upgrade(database, definition.migrations, definition.metadata)
        async with database.transaction() as session:
            for row in rows():
                session.add(row)
    finally:
        await database.dispose()


def _registry_seed(target: Target) -> None:
    target.post("/cpts", "admin", {
        "cpts_id": CPTS, "name": "CPTS de l'Est lyonnais", "communes": ["69259", "69266", "69029"],
        "stage": "aci_signed", "aci_signed_on": "2024-03-01", "missions": ["1a-medecin-traitant"]})
    for idnps, name in ((GP, "Arnaud"), (OTHER_GP, "Bernard")):
        target.post("/professionals", "admin", {
            "idnps": idnps, "family_name": name, "given_name": "A", "profession_code": "10",
            "specialty_code": "SM54", "commune_insee": "69266", "cpts_ids": [CPTS]})
    target.known.update(cpts_id=CPTS, idnps=GP, insee="69266", id=GP)


def _snp_rows() -> list:
    from cpts_snp_dispatch.repository import CptsView, ProfessionalView

    now = datetime.now(UTC)
    rows: list = [CptsView(cpts_id=CPTS, name="CPTS de l'Est lyonnais", communes=["69266", "69259", "69029"],
                           departements=["69"], updated_at=now)]
    for idnps, name, commune, lat, lon in ((GP, "Arnaud", "69266", 45.766, 4.879),
                                           (OTHER_GP, "Bernard", "69259", 45.737, 4.916)):
        rows.append(ProfessionalView(
            idnps=idnps, family_name=name, given_name="Dr", profession_code="10", specialty_code="SM54",
            commune_insee=commune, cpts_ids=[CPTS], sas_participant=True, accepts_en_sus=True,
            en_sus_weekly_cap=2, updated_at=now,
            sites=[{"site_id": f"S{idnps[-2:]}", "commune_insee": commune, "lat": lat, "lon": lon}]))
    return rows


def _snp_seed(target: Target) -> None:
    slots = target.post("/slots", "professional", {"idnps": GP, "site_id": "S01", "slots": [
        {"start": _at(h), "end": _at(h + 0.25)} for h in (30, 31, 32)]})
    request = target.post("/care-requests", "regulator", {
        "origin": "sas", "patient": dict(PATIENT), "location": {"commune_insee": "69266"},
        "reason_category": "fever", "urgency": "48h", "mt_none": True, "consent_mt_referral": True})
    hold = target.post(f"/slots/{slots[1]['slot_id']}/hold", "regulator",
                       {"request_id": request["request_id"]})
    booked = target.post("/appointments", "regulator", {"slot_id": slots[2]["slot_id"],
                                                        "request_id": request["request_id"]})
    target.known.update(cpts_id=CPTS, idnps=GP, slot_id=slots[0]["slot_id"], request_id=request["request_id"],
                        hold_id=hold["hold_id"], appointment_id=booked["appointment_id"],
                        id=slots[0]["slot_id"])


def _matching_rows() -> list:
    from cpts_patient_matching.repository import GpView

    return [GpView(idnps=idnps, family_name="Médecin", given_name="Dr", commune_insee="69266",
                   cpts_ids=[CPTS], active=True, accepting=True, new_patients_per_month=2, publics=["adults"],
                   updated_at=datetime.now(UTC)) for idnps in (GP, OTHER_GP)]


def _matching_seed(target: Target) -> None:
    patient = target.post(f"/cpts/{CPTS}/patients", "secretary", {
        "identity": {"birth_name": "Lambert", "first_names": "Rose", "birth_date": "1950-03-02", "sex": "F",
                     "phone": "0612345678"}, "commune_insee": "69266", "consent": True})
    matching_round = target.post(f"/cpts/{CPTS}/rounds", "coordinator")
    proposals = target.client.get(f"/cpts/{CPTS}/proposals", headers=target.headers("secretary")).json()
    target.known.update(proposal_id=proposals["items"][0]["proposal_id"])
    target.known.update(cpts_id=CPTS, idnps=GP, patient_id=patient["patient"]["patient_id"],
                        round_id=matching_round["round_id"])


def _indicators_seed(target: Target) -> None:
    target.known.update(cpts_id=CPTS, indicator_id="mt-patients-sans-mt")


@dataclass(frozen=True)
class Spec:
    definition: Callable[[], ServiceDefinition]
    rows: Callable[[], list] | None
    seed: Callable[[Target], None]


def _definition(module: str) -> Callable[[], ServiceDefinition]:
    def load() -> ServiceDefinition:
        import importlib

        return importlib.import_module(module).service

    return load


SPECS = {
    "registry": Spec(_definition("cpts_registry.app"), None, _registry_seed),
    "snp-dispatch": Spec(_definition("cpts_snp_dispatch.app"), _snp_rows, _snp_seed),
    "patient-matching": Spec(_definition("cpts_patient_matching.app"), _matching_rows, _matching_seed),
    "indicators": Spec(_definition("cpts_indicators.app"), None, _indicators_seed),
}


def _without_rate_limits(settings_class: type) -> dict[str, Any]:
    """Fuzzing sends thousands of requests a minute: switch off any request rate limiting the service has."""
    fields = getattr(settings_class, "model_fields", {})
    return {name: False for name, info in fields.items()
            if "rate_limit" in name and info.annotation is bool}


def _wait_ready(client: asgi.ASGIClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready within {timeout} s: {client.get('/readyz').text}")


# Calendar bounds a generator seldom draws, where date arithmetic overflows: every date, date-time or period
# key query parameter also gets each of them once.
EDGE_VALUES = {
    "date": ["0001-01-01", "9999-12-31"],
    "date-time": ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
    "period": ["0001-01-01", "9999-12-31", "0001-W01", "9999-W52", "9999-12", "9999-Q4", "9999", "0001"],
}


def _edge_queries(operation) -> list[dict[str, str]]:
    queries = []
    for parameter in operation.query:
        schema = parameter.definition.get("schema", {})
        variants = [schema, *schema.get("anyOf", [])]
        formats = {v.get("format") for v in variants} & {"date", "date-time"}
        kind = formats.pop() if formats else ("period" if parameter.name in ("from", "to", "period")
                                              and any(v.get("type") == "string" and "enum" not in v
                                                      for v in variants) else None)
        queries += [{parameter.name: value} for value in EDGE_VALUES.get(kind, [])]
    return queries


def _fuzz_operation(operation, strategy, role: str, target: Target, report: Report,
                    examples: int = EXAMPLES) -> None:
    headers = target.headers(role)

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        report.cases[role] += 1
        try:
            case.call_and_validate(session=target.client, headers=headers, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one example kept per kind of failure
            text = str(exc).strip()
            parts = getattr(exc, "exceptions", None) or [exc]
            kind = "; ".join(sorted({str(getattr(e, "title", None) or type(e).__name__) for e in parts}))
            report.failures.setdefault((operation.label, role, kind[:200]),
                                       f"{text}\n  reproduce: {case.as_curl_command()}")

    run()


def _fuzz(name: str, target: Target, capsys: pytest.CaptureFixture) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    report = Report(name)
    started = time.monotonic()
    for operation in operations:
        known = {p.name: target.known[p.name] for p in operation.path_parameters if p.name in target.known}
        strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
        if known:
            strategies.append(operation.as_strategy(path_parameters=known))
        edges = [operation.as_strategy(query=query, path_parameters=known or None)
                 for query in _edge_queries(operation)]
        for role in ROLES:
            _fuzz_operation(operation, st.one_of(*strategies), role, target, report)
            for edge in edges:
                _fuzz_operation(operation, edge, role, target, report, examples=1)
    seconds = time.monotonic() - started
    with capsys.disabled():  # the figures are shown whether the run passes or not
        print("\n" + report.summary(len(operations), seconds))
    assert not report.failures, report.describe_failures()


@pytest.fixture
def service_database(tmp_path: Path):
    """One database for the whole fuzzing of a service: PostgreSQL when reachable, else SQLite."""
    if _pg():
        name, url = create_postgres_database()
        try:
            yield url
        finally:
            drop_postgres_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"


@pytest.mark.parametrize("name", list(SPECS))
def test_every_operation_answers_as_documented_under_fuzzing(name, service_database, kafka_broker, tmp_path,
                                                             capsys):
    spec = SPECS[name]
    definition = spec.definition()
    var_dir = tmp_path / "var"
    settings = settings_for(definition, database_url=service_database, kafka_broker=kafka_broker,
                            topic_prefix=f"f{uuid.uuid4().hex[:10]}.", var_dir=var_dir, log_level="WARNING",
                            **_without_rate_limits(definition.settings_class))
    if spec.rows is not None:
        asyncio.run(_prepare(definition, service_database, spec.rows))
    app = create_app(definition, settings)
    issuer = LocalIssuer(var_dir / "local-issuer")
    issuer.ensure_key()
    try:
        with asgi.get_client(app) as client:
            _wait_ready(client)
            target = Target(app=app, client=client, issuer=issuer)
            spec.seed(target)
            _fuzz(name, target, capsys)
    finally:
        asgi.shutdown_lifespans()


class _Upstreams:
    """The four services and the identity provider, as far as the console's own routes reach them."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "idp.example.fr":
            if request.url.path.endswith("/.well-known/openid-configuration"):
                return httpx.Response(200, json={"authorization_endpoint": "https://idp.example.fr/auth",
                                                 "token_endpoint": "https://idp.example.fr/token"})
            return httpx.Response(400, json={"error": "invalid_grant"})
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "alive"})
        return httpx.Response(404, json={"title": "Not Found", "status": 404})


def test_the_console_own_routes_answer_as_documented_under_fuzzing(tmp_path, capsys):
    from cpts_console.app import create_app as create_console
    from cpts_console.settings import ConsoleSettings

    settings = ConsoleSettings(var_dir=tmp_path, registry_url="http://registry.test",
                               snp_dispatch_url="http://snp.test", patient_matching_url="http://matching.test",
                               indicators_url="http://indicators.test", oidc_issuer="https://idp.example.fr/realms/cpts",
                               oidc_client_id="console", oidc_redirect_uri="https://console.example.fr/auth/oidc/callback",
                               **_without_rate_limits(ConsoleSettings))
    app = create_console(settings, transport=httpx.MockTransport(_Upstreams().handle))
    issuer = LocalIssuer(tmp_path / "local-issuer")
    issuer.ensure_key()
    try:
        with asgi.get_client(app) as client:
            _fuzz("console", Target(app=app, client=client, issuer=issuer), capsys)
    finally:
        asgi.shutdown_lifespans()
