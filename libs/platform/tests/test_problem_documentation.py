"""The OpenAPI document tells the problems the platform answers with: application/problem+json bodies of the
`Problem` schema for every 4xx/5xx an operation may give, including FastAPI's validation errors."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.security import HTTPBearer
from fastapi.testclient import TestClient

from cpts_platform.problems import PROBLEM_JSON, RequestModel, install_problem_handlers

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


class Body(RequestModel):
    name: str


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)
    bearer = HTTPBearer()

    @application.get("/open")
    async def open_route() -> dict:
        return {}

    @application.post("/things/{thing_id}", dependencies=[Depends(bearer)],
                      responses={409: {"description": "Already there."},
                                 400: {"description": "FHIR.", "content": {"application/fhir+json": {}}}})
    async def secured(thing_id: str, body: Body) -> dict:
        return {}

    return application


def test_every_error_an_operation_may_give_is_a_documented_problem():
    document = app().openapi()
    secured = document["paths"]["/things/{thing_id}"]["post"]["responses"]
    for status in ("401", "403", "404", "409", "413", "422", "429", "503"):
        assert secured[status]["content"] == {PROBLEM_JSON: PROBLEM}, status
    assert secured["409"]["description"] == "Already there."
    # A route's own error format stays, next to the platform's problems.
    assert secured["400"]["content"] == {"application/fhir+json": {}, PROBLEM_JSON: PROBLEM}
    opened = document["paths"]["/open"]["get"]["responses"]
    assert set(opened) == {"200", "413"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"title", "status"}


def test_text_no_database_can_store_is_refused_by_request_bodies():
    client = TestClient(app())
    response = client.post("/things/a", json={"name": "a\x00b"}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["errors"][0]["field"] == "name"
