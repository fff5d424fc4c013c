"""Text no database can store, and nulls for required columns, are 422 problems naming the field, never 500s
(found by fuzzing the OpenAPI document: tests/hardening/test_fuzz_openapi.py)."""

from __future__ import annotations

import pytest

from cpts_platform.auth import LocalIssuer
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.testing import running_service, settings_for
from cpts_registry.app import service

CPTS, GP = "690049999", "810100000011"


@pytest.fixture
async def registry(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        token = LocalIssuer(tmp_path / "var" / "local-issuer").mint(subject="u-admin", roles=["admin"])
        client.headers["Authorization"] = f"Bearer {token}"
        created = await client.post("/cpts", json={"cpts_id": CPTS, "name": "CPTS de l'Est lyonnais",
                                                   "communes": ["69259"]})
        assert created.status_code == 201, created.text
        created = await client.post("/professionals", json={
            "idnps": GP, "family_name": "Morel", "given_name": "A", "profession_code": "10",
            "cpts_ids": [CPTS]})
        assert created.status_code == 201, created.text
        yield client


def fields_of(response, status: int = 422) -> list[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return [e["field"] for e in response.json()["errors"]]


async def test_a_nul_character_in_a_query_parameter_is_422_naming_it(registry):
    response = await registry.get("/professionals", params={"name": "Mo\x00rel", "profession": "10"})
    assert fields_of(response) == ["name"]
    assert response.json()["errors"][0]["in"] == "query"
    assert (await registry.get("/professionals", params={"name": "Morel"})).status_code == 200


async def test_a_nul_character_in_a_path_or_a_body_is_422(registry):
    assert fields_of(await registry.get("/professionals/8101%0000011")) == ["path"]
    patched = await registry.patch(f"/professionals/{GP}", json={"family_name": "Mo\x00rel"})
    assert fields_of(patched) == ["family_name"]
    listed = await registry.post("/professionals", json={
        "idnps": "810100000012", "family_name": "Morel", "given_name": "A", "profession_code": "10",
        "cpts_ids": [CPTS], "profession_label": "x\x00"})
    assert fields_of(listed) == ["profession_label"]


async def test_a_lone_surrogate_in_a_body_is_422(registry):
    patched = await registry.patch(f"/professionals/{GP}", content=b'{"family_name": "Mo\\ud800rel"}',
                                   headers={"content-type": "application/json"})
    assert fields_of(patched) == ["family_name"]


async def test_required_columns_may_be_left_out_of_a_correction_but_not_set_to_null(registry):
    for name in ("family_name", "given_name", "profession_code"):
        assert fields_of(await registry.patch(f"/professionals/{GP}", json={name: None})) == [name]
    corrected = await registry.patch(f"/professionals/{GP}", json={"civility": None, "given_name": "Anne"})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["given_name"] == "Anne"
