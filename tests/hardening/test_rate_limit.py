"""Rate limits of the searches (snp-dispatch, per token subject) and of the console's logins (per address):
429 problem+json with `Retry-After` past the limit, counted in a metric without the subject; other users are
not held back; the limits are settings, and can be switched off."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from cpts_console.app import create_app as create_console
from cpts_console.settings import ConsoleSettings
from cpts_platform.auth import LocalIssuer
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.settings import ServiceSettings
from cpts_platform.testing import running_service, settings_for
from cpts_snp_dispatch.app import service as snp_dispatch
from cpts_snp_dispatch.fhir_mapping import IDNPS_SYSTEM

IDNPS = "810100000001"


def refused(service: str, limit: str) -> float:
    return REGISTRY.get_sample_value("cpts_rate_limited_requests_total",
                                     {"service": service, "limit": limit}) or 0.0


def bearer(issuer: LocalIssuer, subject: str, role: str = "regulator") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=subject, roles=[role], departements=['69'])}"}


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert 1 <= int(response.headers["retry-after"]) <= 60
    body = response.json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"


@pytest.fixture
async def dispatch(tmp_path: Path, kafka_broker: str, topic_prefix: str, request: pytest.FixtureRequest):
    overrides = getattr(request, "param", {})
    settings = settings_for(snp_dispatch, database_url=f"sqlite+aiosqlite:///{tmp_path / 'snp.db'}",
                            kafka_broker=kafka_broker, topic_prefix=topic_prefix, var_dir=tmp_path / "var",
                            rate_limit_search="3/minute", rate_limit_fhir_search="2/minute", **overrides)
    async with running_service(snp_dispatch, settings) as client:
        yield client, LocalIssuer(tmp_path / "var" / "local-issuer")


async def _care_request(client: httpx.AsyncClient, issuer: LocalIssuer) -> str:
    response = await client.post("/care-requests", headers=bearer(issuer, "intake"), json={
        "origin": "sas", "patient": {"family_name": "Lambert", "given_name": "Rose",
                                     "birth_date": "1950-03-02", "sex": "F"},
        "location": {"commune_insee": "69266"}, "reason_category": "fever"})
    assert response.status_code == 201, response.text
    return response.json()["request_id"]


async def test_a_regulator_searching_too_fast_gets_429_with_retry_after(dispatch):
    client, issuer = dispatch
    request_id = await _care_request(client, issuer)
    alice, bob = bearer(issuer, "regulator-alice"), bearer(issuer, "regulator-bob")
    before = refused("snp-dispatch", "search")
    path = f"/care-requests/{request_id}/candidates"
    assert [(await client.get(path, headers=alice)).status_code for _ in range(3)] == [200, 200, 200]
    assert_throttled(await client.get(path, headers=alice))
    # Another regulator (same address) is not held back; without a token it is a 401, never a count.
    assert (await client.get(path, headers=bob)).status_code == 200
    assert (await client.get(path)).status_code == 401
    # Counted by service and limit; the metric never names who.
    assert refused("snp-dispatch", "search") == before + 1
    metrics = (await client.get("/metrics")).text
    assert "regulator-alice" not in metrics and 'limit="search"' in metrics


async def test_the_fhir_slot_search_is_limited_per_client(dispatch):
    client, issuer = dispatch
    aggregator, other = bearer(issuer, "sas-aggregator"), bearer(issuer, "other-client")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    params = [("start", "ge" + start.isoformat()), ("start", "le" + (start + timedelta(days=2)).isoformat()),
              ("status", "free"), ("schedule.actor:Practitioner.identifier", f"{IDNPS_SYSTEM}|{IDNPS}")]
    answers = [(await client.get("/fhir/Slot", params=params, headers=aggregator)).status_code
               for _ in range(2)]
    assert answers == [200, 200], answers
    assert_throttled(await client.get("/fhir/Slot", params=params, headers=aggregator))
    assert (await client.get("/fhir/Slot", params=params, headers=other)).status_code == 200


@pytest.mark.parametrize("dispatch", [{"rate_limit_enabled": False}], indirect=True)
async def test_limits_switched_off_let_every_search_through(dispatch):
    client, issuer = dispatch
    request_id = await _care_request(client, issuer)
    alice = bearer(issuer, "regulator-alice")
    statuses = {(await client.get(f"/care-requests/{request_id}/candidates", headers=alice)).status_code
                for _ in range(10)}
    assert statuses == {200}


def test_the_default_limits_leave_room_for_a_regulator_working_fast(tmp_path: Path):
    """A search every second for a minute, and bursts of 10 in a second, stay under the default limits."""
    from limits import parse_many

    settings = ServiceSettings(var_dir=tmp_path)
    assert settings.rate_limit_enabled
    for item in parse_many(settings.rate_limit_search):
        assert item.amount / item.get_expiry() >= 1 and item.amount >= 10


# --- console logins ----------------------------------------------------------------------------------------


def console(tmp_path: Path, upstream=None, **overrides) -> TestClient:
    settings = ConsoleSettings(var_dir=tmp_path, registry_url="http://registry.test",
                               snp_dispatch_url="http://snp.test", patient_matching_url="http://matching.test",
                               indicators_url="http://indicators.test",
                               oidc_issuer="https://idp.example.fr", oidc_client_id="console",
                               oidc_redirect_uri="https://console.example.fr/auth/oidc/callback", **overrides)
    handler = upstream or (lambda request: httpx.Response(200, json={
        "authorization_endpoint": "https://idp.example.fr/auth",
        "token_endpoint": "https://idp.example.fr/token"}))
    return TestClient(create_console(settings, transport=httpx.MockTransport(handler)))


def test_logins_from_one_address_are_limited(tmp_path: Path):
    before = refused("console", "login")
    with console(tmp_path, rate_limit_login="3/minute") as client:
        demo = [client.post("/auth/demo-login", json={"user": "regulatrice"}).status_code for _ in range(2)]
        oidc = client.get("/auth/oidc/login", follow_redirects=False).status_code
        assert demo == [200, 200] and oidc == 302
        assert_throttled(client.post("/auth/demo-login", json={"user": "regulatrice"}))
        assert_throttled(client.get("/auth/oidc/callback", params={"code": "c", "state": "s"}))
        # Reading the login options is not a login.
        assert client.get("/auth/config").status_code == 200
    assert refused("console", "login") == before + 2


def test_logins_from_another_address_are_counted_apart(tmp_path: Path):
    settings_kwargs = {"rate_limit_login": "1/minute"}
    with console(tmp_path, **settings_kwargs) as client:
        assert client.post("/auth/demo-login", json={"user": "regulatrice"}).status_code == 200
        assert client.post("/auth/demo-login", json={"user": "regulatrice"}).status_code == 429
        app = client.app
    other = TestClient(app, client=("203.0.113.7", 50000))
    with other:
        assert other.post("/auth/demo-login", json={"user": "regulatrice"}).status_code == 200


def test_the_console_passes_a_services_429_and_retry_after_through(tmp_path: Path):
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7", "content-type": PROBLEM_JSON},
                              json={"title": "Too Many Requests", "status": 429, "detail": "search"})

    with console(tmp_path, upstream) as client:
        response = client.get(f"/api/snp/care-requests/{uuid.uuid4()}/candidates")
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_console_logins_switched_off_are_not_limited(tmp_path: Path):
    with console(tmp_path, rate_limit_enabled=False, rate_limit_login="1/minute") as client:
        statuses = {client.post("/auth/demo-login", json={"user": "regulatrice"}).status_code
                    for _ in range(5)}
    assert statuses == {200}
