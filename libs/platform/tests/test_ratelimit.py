"""Rate limits: the limiter over the `limits` library, and the FastAPI dependency keyed by subject or
address."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from limits.errors import ConfigurationError
from prometheus_client import REGISTRY

from cpts_platform.auth import LocalIssuer, TokenVerifier
from cpts_platform.problems import PROBLEM_JSON, ProblemError, install_problem_handlers
from cpts_platform.ratelimit import RateLimiter, rate_limited, rate_limiter_from
from cpts_platform.settings import ServiceSettings, TrustedIssuer


def refused_count(service: str, limit: str) -> float:
    return REGISTRY.get_sample_value("cpts_rate_limited_requests_total",
                                     {"service": service, "limit": limit}) or 0.0


async def test_calls_over_the_limit_are_refused_with_429_and_retry_after():
    limiter = RateLimiter({"search": "3/minute"}, service="unit-a")
    for _ in range(3):
        await limiter.check("search", "sub:alice")
    with pytest.raises(ProblemError) as refused:
        await limiter.check("search", "sub:alice")
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert "search" in refused.value.detail and "alice" not in refused.value.detail


async def test_each_key_and_each_limit_has_its_own_counter():
    limiter = RateLimiter({"search": "2/minute", "login": "2/minute"}, service="unit-b")
    for _ in range(2):
        await limiter.check("search", "sub:alice")
    await limiter.check("search", "sub:bob")
    await limiter.check("login", "sub:alice")
    with pytest.raises(ProblemError):
        await limiter.check("search", "sub:alice")


async def test_every_part_of_a_compound_limit_holds():
    limiter = RateLimiter({"search": "100/second;2/minute"}, service="unit-c")
    await limiter.check("search", "k")
    await limiter.check("search", "k")
    with pytest.raises(ProblemError) as refused:
        await limiter.check("search", "k")
    assert "2 per 1 minute" in refused.value.detail


async def test_refusals_are_counted_by_service_and_limit_only():
    before = refused_count("unit-d", "search")
    limiter = RateLimiter({"search": "1/minute"}, service="unit-d")
    await limiter.check("search", "sub:alice")
    for _ in range(2):
        with pytest.raises(ProblemError):
            await limiter.check("search", "sub:alice")
    assert refused_count("unit-d", "search") == before + 2


async def test_a_disabled_limiter_and_an_unknown_limit_let_everything_through():
    disabled = RateLimiter({"search": "1/minute"}, service="unit-e", enabled=False)
    limiter = RateLimiter({"search": "1/minute"}, service="unit-e")
    for _ in range(5):
        await disabled.check("search", "k")
        await limiter.check("not-configured", "k")


def test_a_malformed_limit_is_refused_at_start_naming_the_setting():
    with pytest.raises(ValueError, match="rate_limit_search"):
        RateLimiter({"search": "lots"})


def test_the_limiter_is_built_from_every_rate_limit_setting(tmp_path: Path):
    settings = ServiceSettings(var_dir=tmp_path, rate_limit_search="5/minute",
                               rate_limit_fhir_search="7/second")
    limiter = rate_limiter_from(settings, service="unit-f")
    assert [str(i) for i in limiter.limits("search")] == ["5 per 1 minute"]
    assert [str(i) for i in limiter.limits("fhir_search")] == ["7 per 1 second"]
    assert limiter.enabled
    assert not rate_limiter_from(ServiceSettings(var_dir=tmp_path, rate_limit_enabled=False),
                                 service="unit-f").enabled


def test_the_storage_is_a_setting_and_unknown_schemes_are_refused():
    RateLimiter({"search": "1/minute"}, storage_uri="async+memory://")
    with pytest.raises(ConfigurationError):
        RateLimiter({"search": "1/minute"}, storage_uri="nowhere://here")


def _app(tmp_path: Path, limits: dict[str, str]) -> tuple[FastAPI, LocalIssuer]:
    issuer = LocalIssuer(tmp_path / "issuer")
    issuer.ensure_key()
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = TokenVerifier([TrustedIssuer(issuer=issuer.issuer, audience=issuer.audience,
                                                            jwks_url=issuer.jwks_url)])
    app.state.rate_limiter = RateLimiter(limits, service="unit-app")

    @app.get("/search", dependencies=[Depends(rate_limited("search"))])
    async def search() -> dict:
        return {"ok": True}

    @app.post("/login", dependencies=[Depends(rate_limited("login", by="ip"))])
    async def login() -> dict:
        return {"ok": True}

    return app, issuer


def _client(app: FastAPI, address: str = "10.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1234)),
                             base_url="http://test")


async def test_the_dependency_counts_per_token_subject(tmp_path: Path):
    app, issuer = _app(tmp_path, {"search": "2/minute"})
    alice = {"Authorization": f"Bearer {issuer.mint(subject='alice', roles=['regulator'])}"}
    bob = {"Authorization": f"Bearer {issuer.mint(subject='bob', roles=['regulator'])}"}
    async with _client(app) as client:
        assert [(await client.get("/search", headers=alice)).status_code for _ in range(3)] == [200, 200, 429]
        refused = await client.get("/search", headers=alice)
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["status"] == 429 and refused.json()["title"] == "Too Many Requests"
        # Another user of the same address is not held back; a call without a token is a 401, not counted.
        assert (await client.get("/search", headers=bob)).status_code == 200
        assert (await client.get("/search")).status_code == 401


async def test_the_dependency_counts_per_client_address(tmp_path: Path):
    app, _ = _app(tmp_path, {"login": "2/minute"})
    async with _client(app, "10.0.0.1") as first, _client(app, "10.0.0.2") as second:
        assert [(await first.post("/login")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await second.post("/login")).status_code == 200


async def test_an_app_without_a_limiter_is_not_limited(tmp_path: Path):
    app, _ = _app(tmp_path, {"login": "1/minute"})
    del app.state.rate_limiter
    async with _client(app) as client:
        assert [(await client.post("/login")).status_code for _ in range(3)] == [200, 200, 200]
