"""Errors answered as application/problem+json (RFC 9457), through the registry service with its lifespan running."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace

import httpx
import pytest
import pytest_asyncio

from cpts_platform.auth import LocalIssuer
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.testing import running_service, settings_for
from cpts_registry.app import service

CPTS_A = "690049999"
MAX_BODY_BYTES = 1000

module_loop = pytest.mark.asyncio(loop_scope="module")


async def register_cpts(client, issuer) -> None:
    """The CPTS the tests' professionals belong to must exist in the registry."""
    admin = {"Authorization": f"Bearer {issuer.mint(subject='admin', roles=['admin'])}"}
    for cpts_id, commune in (("690049999", "69259"), ("690048888", "69290")):
        response = await client.post("/cpts", json={"cpts_id": cpts_id, "name": f"CPTS {cpts_id}",
                                                    "communes": [commune]}, headers=admin)
        assert response.status_code == 201, response.text


@dataclass
class Registry:
    client: httpx.AsyncClient
    headers: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory, kafka_broker: str):
    base = tmp_path_factory.mktemp("problems")
    var_dir = base / "var"
    settings = settings_for(service, database_url=f"sqlite+aiosqlite:///{base / 't.db'}", kafka_broker=kafka_broker,
                            topic_prefix=f"t{uuid.uuid4().hex[:10]}.", var_dir=var_dir,
                            max_body_bytes=MAX_BODY_BYTES)
    issuer = LocalIssuer(var_dir / "local-issuer")
    async with running_service(replace(service, echo_invalid_values=False), settings) as client:
        await register_cpts(client, LocalIssuer(var_dir / "local-issuer"))
        token = issuer.mint(subject="coordinator", roles=["coordinator"], cpts_ids=[CPTS_A])
        yield Registry(client=client, headers={"Authorization": f"Bearer {token}"})


def professional(idnps: str, **extra) -> dict:
    return {"idnps": idnps, "family_name": "Martin", "given_name": "Claire", "profession_code": "10",
            "cpts_ids": [CPTS_A], **extra}


def fresh_idnps() -> str:
    return "8" + str(uuid.uuid4().int)[:11]


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["detail"]
    return body


@module_loop
async def test_invalid_idnps_is_422_naming_the_field_without_echoing_the_value(registry: Registry):
    submitted = "7XQZ-secret-99"
    response = await registry.client.post("/professionals", json=professional(submitted), headers=registry.headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "idnps"
    assert body["errors"][0]["in"] == "body"
    assert body["errors"][0]["type"] == "string_pattern_mismatch"
    assert "idnps" in body["detail"]
    assert body["instance"] == "/professionals"
    assert submitted not in response.text


@module_loop
async def test_several_invalid_fields_are_all_named(registry: Registry):
    payload = professional("123", commune_insee="ABCDE", profession_code="médecin")
    response = await registry.client.post("/professionals", json=payload, headers=registry.headers)
    body = assert_problem(response, 422)
    assert {e["field"] for e in body["errors"]} == {"idnps", "commune_insee", "profession_code"}
    for value in ("ABCDE", "médecin"):
        assert value not in response.text


@module_loop
async def test_invalid_list_item_is_named_by_its_path(registry: Registry):
    payload = professional(fresh_idnps())
    payload["cpts_ids"] = [CPTS_A, "not-a-finess"]
    response = await registry.client.post("/professionals", json=payload, headers=registry.headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "cpts_ids.1"
    assert "not-a-finess" not in response.text


@module_loop
async def test_unknown_field_is_422_naming_it(registry: Registry):
    payload = professional(fresh_idnps(), nir="1850775123456")
    response = await registry.client.post("/professionals", json=payload, headers=registry.headers)
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["nir"]
    assert body["errors"][0]["type"] == "extra_forbidden"
    assert "nir" in body["detail"]
    assert "1850775123456" not in response.text


@module_loop
async def test_malformed_json_is_422_problem(registry: Registry):
    response = await registry.client.post("/professionals", content=b'{"idnps": "8100', headers={
        **registry.headers, "content-type": "application/json"})
    assert_problem(response, 422)


@module_loop
async def test_invalid_query_parameter_is_422_naming_it(registry: Registry):
    response = await registry.client.get("/professionals", params={"limit": 100000}, headers=registry.headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "limit"
    assert body["errors"][0]["in"] == "query"


@module_loop
async def test_body_over_the_limit_is_413_problem(registry: Registry):
    payload = professional(fresh_idnps(), family_name="x" * 5000)
    content = json.dumps(payload).encode()
    assert len(content) > 5000
    response = await registry.client.post("/professionals", content=content, headers={
        **registry.headers, "content-type": "application/json"})
    body = assert_problem(response, 413)
    assert str(MAX_BODY_BYTES) in body["detail"]


@module_loop
async def test_streamed_body_over_the_limit_without_content_length_is_413_problem(registry: Registry):
    content = json.dumps(professional(fresh_idnps(), family_name="x" * 5000)).encode()

    async def chunks():
        for start in range(0, len(content), 500):
            yield content[start:start + 500]

    request = registry.client.build_request("POST", "/professionals", content=chunks(), headers={
        **registry.headers, "content-type": "application/json"})
    assert "content-length" not in request.headers
    response = await registry.client.send(request)
    body = assert_problem(response, 413)
    assert str(MAX_BODY_BYTES) in body["detail"]


@module_loop
async def test_streamed_body_under_the_limit_is_accepted(registry: Registry):
    content = json.dumps(professional(fresh_idnps())).encode()
    assert len(content) < MAX_BODY_BYTES

    async def chunks():
        for start in range(0, len(content), 50):
            yield content[start:start + 50]

    response = await registry.client.post("/professionals", content=chunks(), headers={
        **registry.headers, "content-type": "application/json"})
    assert response.status_code == 201, response.text


@module_loop
async def test_unknown_professional_is_404_problem(registry: Registry):
    idnps = fresh_idnps()
    response = await registry.client.get(f"/professionals/{idnps}", headers=registry.headers)
    body = assert_problem(response, 404)
    assert body["instance"] == f"/professionals/{idnps}"


@module_loop
async def test_unknown_route_is_404_problem(registry: Registry):
    assert_problem(await registry.client.get("/nowhere", headers=registry.headers), 404)


@module_loop
async def test_wrong_method_is_405_problem(registry: Registry):
    response = await registry.client.delete("/professionals", headers=registry.headers)
    assert_problem(response, 405)
    assert "allow" in response.headers  # the problem handler keeps the exception's headers


@module_loop
async def test_duplicate_registration_is_409_problem(registry: Registry):
    idnps = fresh_idnps()
    first = await registry.client.post("/professionals", json=professional(idnps), headers=registry.headers)
    assert first.status_code == 201, first.text
    second = await registry.client.post("/professionals", json=professional(idnps, given_name="Autre"),
                                        headers=registry.headers)
    body = assert_problem(second, 409)
    assert idnps in body["detail"]
    # The first registration is kept as it was.
    stored = await registry.client.get(f"/professionals/{idnps}", headers=registry.headers)
    assert stored.json()["given_name"] == "Claire"
