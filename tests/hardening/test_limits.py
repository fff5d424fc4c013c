"""Input limits of every API: each request string, list and page size is bounded in the OpenAPI document (and
so enforced by the validation that reads it), bodies over `max_body_bytes` are refused with 413 by every
service and by the console's proxy, and a few limits are checked end to end (422 naming the field)."""

from __future__ import annotations

import importlib
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from cpts_console.app import create_app as create_console
from cpts_console.settings import ConsoleSettings
from cpts_platform.auth import LocalIssuer
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.service import create_app
from cpts_platform.testing import running_service, settings_for

SERVICES = {
    "registry": "cpts_registry.app",
    "snp-dispatch": "cpts_snp_dispatch.app",
    "patient-matching": "cpts_patient_matching.app",
    "indicators": "cpts_indicators.app",
}
CPTS = "690049999"

# Formats whose parser bounds the length by itself.
BOUNDED_FORMATS = {"date", "date-time", "time", "uuid", "binary"}
# A query parameter is limit-like (it sizes a page, a scan or a span) when its name says so.
LIMIT_LIKE = re.compile(r"(^|_)(limit|count|size|offset|per_page|page|days|weeks)$")

# The justified exceptions, each as (service, regular expression on the finding).
ALLOWED = [
    # FHIR searches read their parameters themselves, with FHIR's semantics: `_count` above the maximum is
    # clamped to it (a FHIR server may return fewer than asked), values are parsed and refused with a 400
    # OperationOutcome; the OpenAPI document only describes them. Their length is bounded by the server's
    # request-line limit (uvicorn/h11: 16 KiB).
    ("registry", r"^GET /fhir/\w+ query:"),
    ("snp-dispatch", r"^GET /fhir/Slot query:"),
    ("snp-dispatch", r"^PUT /fhir/Appointment query:identifier"),
    ("indicators", r"^GET /fhir/MeasureReport query:"),
    # Values checked against closed lists before any use (a 422 naming the field otherwise): an indicator id
    # against the catalogue, a custom indicator's kind of fact, attributes and values against the fact kinds
    # (`domain.custom.check_part`); the 1 MiB body limit bounds what can be sent.
    ("indicators", r" TargetIn\.indicator: "),
    ("indicators", r"CustomPart\.(fact|filters)"),
]


def _bounded_pattern(pattern: str) -> bool:
    """An anchored pattern without unbounded repetition fixes the length of what it accepts."""
    return (pattern.startswith("^") and pattern.endswith("$")
            and not re.search(r"(?<!\\)[+*]|\{\d+,\}", pattern))


def _walk(schema: Any, spec: dict, where: str, seen: frozenset[str]) -> Iterator[str]:
    """Unbounded strings, arrays and open objects of a request schema, following `$ref`s once each."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _walk(spec["components"]["schemas"][name], spec, f"{where} {name}", seen | {name})
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _walk(sub, spec, where, seen)
    kind = schema.get("type")
    if kind == "string" and not ("maxLength" in schema or "enum" in schema or "const" in schema
                                 or schema.get("format") in BOUNDED_FORMATS
                                 or _bounded_pattern(schema.get("pattern", ""))):
        yield f"{where}: string without maxLength"
    if kind == "array":
        if "maxItems" not in schema:
            yield f"{where}: array without maxItems"
        yield from _walk(schema.get("items", {}), spec, f"{where}[]", seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, spec, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        if "maxProperties" not in schema:
            yield f"{where}: object without maxProperties"
        yield from _walk(extra, spec, f"{where}.*", seen)


def _has_maximum(schema: dict) -> bool:
    return "maximum" in schema or "exclusiveMaximum" in schema or any(
        _has_maximum(s) for s in schema.get("anyOf", []))


def unbounded_inputs(spec: dict) -> list[str]:
    """What a request may send without a bound: body and query strings and arrays, limit-like query
    parameters without a maximum. Path parameters are left out: each is one identifier looked up by key,
    within the server's request-line limit."""
    findings = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            at = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                if parameter["in"] not in ("query", "header", "cookie"):
                    continue
                where = f"{at} {parameter['in']}:{parameter['name']}"
                schema = parameter.get("schema", {})
                findings += _walk(schema, spec, where, frozenset())
                if parameter["in"] == "query" and LIMIT_LIKE.search(parameter["name"]):
                    if not _has_maximum(schema):
                        findings.append(f"{where}: limit without maximum")
                    if parameter.get("required"):
                        findings.append(f"{where}: limit without default")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                findings += _walk(content.get("schema", {}), spec, f"{at} body", frozenset())
    return list(dict.fromkeys(findings))


def _definition(name: str):
    return importlib.import_module(SERVICES[name]).service


def _service_app(name: str, tmp_path: Path):
    definition = _definition(name)
    return create_app(definition, definition.settings_class(profile="test", var_dir=tmp_path))


def _console_settings(tmp_path: Path, **overrides) -> ConsoleSettings:
    return ConsoleSettings(var_dir=tmp_path, registry_url="http://registry.test",
                           snp_dispatch_url="http://snp.test", patient_matching_url="http://matching.test",
                           indicators_url="http://indicators.test", **overrides)


# --- every input bounded in the documents ------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SERVICES, "console"])
def test_every_request_string_list_and_page_size_is_bounded(name: str, tmp_path: Path):
    app = create_console(_console_settings(tmp_path)) if name == "console" else _service_app(name, tmp_path)
    findings = unbounded_inputs(app.openapi())
    unjustified = [f for f in findings
                   if not any(service == name and re.search(rule, f) for service, rule in ALLOWED)]
    assert not unjustified, f"{name}: unbounded inputs (bound them, or justify in ALLOWED):\n" + "\n".join(
        unjustified)


def test_the_audit_finds_unbounded_inputs():
    spec = {"paths": {"/x": {"get": {"parameters": [
        {"in": "query", "name": "q", "schema": {"type": "string"}},
        {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1}},
        {"in": "query", "name": "id", "schema": {"type": "string", "pattern": r"^\d{9}$"}},
        {"in": "query", "name": "free", "schema": {"type": "string", "pattern": r"^\w+$"}},
    ]}, "post": {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/In"}}}}}}},
        "components": {"schemas": {"In": {"type": "object", "properties": {
            "names": {"type": "array", "items": {"type": "string", "maxLength": 10}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "day": {"type": "string", "format": "date"}}}}}}
    assert unbounded_inputs(spec) == [
        "GET /x query:q: string without maxLength",
        "GET /x query:limit: limit without maximum",
        "GET /x query:free: string without maxLength",
        "POST /x body In.names: array without maxItems",
        "POST /x body In.note: string without maxLength",
    ]


# --- body size ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SERVICES))
async def test_every_service_refuses_an_oversize_body_with_413(name: str, tmp_path: Path):
    app = _service_app(name, tmp_path)
    limit = _definition(name).settings_class(profile="test").max_body_bytes
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.post("/anything", content=b"x" * (limit + 1),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == 413


def test_the_console_proxy_refuses_an_oversize_body_before_calling_the_service(tmp_path: Path):
    calls: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(201, json={})

    settings = _console_settings(tmp_path, max_body_bytes=10_000)
    app = create_console(settings, transport=httpx.MockTransport(upstream))
    with TestClient(app) as client:
        declared = client.post("/api/registry/cpts", content=b"x" * 10_001,
                               headers={"content-type": "application/json"})

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(11):
                yield b"x" * 1_000

        streamed = client.post("/api/registry/cpts", content=chunks(),
                               headers={"content-type": "application/json"})
        small = client.post("/api/registry/cpts", json={"name": "CPTS"})
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert small.status_code == 201
    assert len(calls) == 1


# --- behaviour: 422 naming the field -----------------------------------------------------------------------


@pytest.fixture
async def services(tmp_path: Path, kafka_broker: str):
    """Every service in-process on SQLite (validation comes before any database work), with an admin token."""
    from contextlib import AsyncExitStack

    clients = {}
    async with AsyncExitStack() as stack:
        for name in SERVICES:
            var_dir = tmp_path / name
            settings = settings_for(_definition(name),
                                    database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
                                    kafka_broker=kafka_broker, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                                    var_dir=var_dir)
            clients[name] = await stack.enter_async_context(
                running_service(_definition(name), settings))
            token = LocalIssuer(var_dir / "local-issuer").mint(subject="admin", roles=["admin"])
            clients[name].headers["Authorization"] = f"Bearer {token}"
        yield clients


def _assert_422_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert field in body["detail"]


async def test_over_long_names_and_oversize_pages_are_422_naming_the_field(services):
    registry, dispatch = services["registry"], services["snp-dispatch"]
    matching, indicators = services["patient-matching"], services["indicators"]
    _assert_422_naming(await registry.post("/cpts", json={"cpts_id": CPTS, "name": "N" * 201,
                                                          "communes": ["69259"]}), "name")
    _assert_422_naming(await registry.get("/professionals", params={"name": "M" * 101}), "name")
    _assert_422_naming(await registry.get("/professionals", params={"limit": 501}), "limit")
    _assert_422_naming(await dispatch.get("/effecteurs", params={"limit": 1001}), "limit")
    _assert_422_naming(await dispatch.post("/care-requests", json={
        "origin": "sas", "patient": {"family_name": "D" * 101, "given_name": "Rose",
                                     "birth_date": "1950-03-02", "sex": "F"},
        "location": {"commune_insee": "69259"}, "reason_category": "fever"}), "patient.family_name")
    _assert_422_naming(await dispatch.get("/care-requests/x/candidates",
                                          params=[("service_type", "AMB")] * 4), "service_type")
    _assert_422_naming(await matching.get(f"/cpts/{CPTS}/patients", params={"limit": 501}), "limit")
    _assert_422_naming(await matching.get(f"/cpts/{CPTS}/rounds", params={"offset": 100_001}), "offset")
    _assert_422_naming(await indicators.get(f"/indicators/cpts/{CPTS}", params={"at": "2026-11-23" * 10}),
                       "at")


def test_the_console_refuses_an_over_long_demo_user_and_too_many_communes(tmp_path: Path):
    app = create_console(_console_settings(tmp_path),
                         transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with TestClient(app) as client:
        _assert_422_naming(client.post("/auth/demo-login", json={"user": "u" * 41}), "user")
        _assert_422_naming(client.get("/geo/communes", params=[("insee", "69259")] * 301), "insee")
