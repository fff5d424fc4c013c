"""The audit trail: lines written with the declared purpose, append-only in the database (SQLite and
PostgreSQL), and `GET /audit` for admins only, filtered, paginated and itself audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from cpts_platform import audit
from cpts_platform.auth import LocalIssuer, Principal, Role, TokenVerifier
from cpts_platform.db import Database, add_platform_tables
from cpts_platform.problems import install_problem_handlers
from cpts_platform.settings import TrustedIssuer
from fastapi import Depends, FastAPI


@pytest.fixture
async def database(database_url):
    metadata = sa.MetaData()
    tables = add_platform_tables(metadata)
    audit.add_audit_table(metadata)
    db = Database(database_url, tables)
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        for statement in audit.append_only_statements(db.dialect):
            await connection.execute(sa.text(statement))
    try:
        yield db
    finally:
        await db.dispose()


def _principal(subject: str, *roles: Role) -> Principal:
    return Principal(subject=subject, roles=frozenset(roles))


async def _lines(db: Database) -> list[tuple]:
    async with db.sessions() as session:
        rows = await session.execute(sa.text(
            "SELECT subject, roles, action, record_type, record_id, purpose FROM audit_log ORDER BY id"))
        return [tuple(r) for r in rows.all()]


async def test_lines_are_appended_and_the_database_refuses_to_change_or_delete_them(database):
    async with database.transaction() as session:
        await audit.record(session, _principal("sec-1", Role.SECRETARY), action="read", record_type="patient",
                           record_id="p1", purpose="follow-up")
        await audit.record_many(session, _principal("coord-1", Role.COORDINATOR, Role.SECRETARY), action="read",
                                record_type="patient", record_ids=["p2", "p3"], purpose="list of patients")
    assert await _lines(database) == [
        ("sec-1", "secretary", "read", "patient", "p1", "follow-up"),
        ("coord-1", "coordinator,secretary", "read", "patient", "p2", "list of patients"),
        ("coord-1", "coordinator,secretary", "read", "patient", "p3", "list of patients"),
    ]
    for statement in ("UPDATE audit_log SET purpose = 'nothing' WHERE record_id = 'p1'",
                      "DELETE FROM audit_log WHERE record_id = 'p1'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with database.transaction() as session:
                await session.execute(sa.text(statement))
    if database.dialect == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with database.transaction() as session:
                await session.execute(sa.text("TRUNCATE audit_log"))
    assert len(await _lines(database)) == 3


async def test_a_declared_purpose_is_recorded_with_the_route_s_one():
    token = audit._declared.set("regulation")
    try:
        assert audit.effective_purpose("search") == "search [regulation]"
    finally:
        audit._declared.reset(token)
    assert audit.effective_purpose("search") == "search"


# --- GET /audit ---------------------------------------------------------------------------------------------


@pytest.fixture
async def client(database, tmp_path):
    issuer = LocalIssuer(tmp_path / "issuer")
    issuer.ensure_key()
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(audit.audit_router(), dependencies=[Depends(audit.capture_declared_purpose)])
    app.state.runtime = SimpleNamespace(database=database)
    app.state.token_verifier = TokenVerifier([TrustedIssuer(issuer=issuer.issuer, audience=issuer.audience,
                                                            jwks_url=issuer.jwks_url)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit") as http:
        http.token = lambda role, **claims: {  # type: ignore[attr-defined]
            "Authorization": "Bearer " + issuer.mint(subject=f"{role}-user", roles=[role] if role else [],
                                                     **claims)}
        yield http


async def _seed(database: Database) -> None:
    async with database.transaction() as session:
        for i in range(5):
            await audit.record(session, _principal("sec-1", Role.SECRETARY), action="read",
                               record_type="patient", record_id=f"p{i}", purpose="follow-up")
        await audit.record(session, _principal("reg-1", Role.REGULATOR), action="create",
                           record_type="care_request", record_id="r1", purpose="intake")


async def test_only_an_admin_queries_the_trail(client, database):
    await _seed(database)
    for role, claims in [("secretary", {"cpts_ids": ["690049999"]}), ("coordinator", {"cpts_ids": ["690049999"]}),
                         ("regulator", {"departements": ["69"]}), ("professional", {"idnps": "810100000001"}),
                         ("ars", {"departements": ["69"]}), (None, {})]:
        response = await client.get("/audit", headers=client.token(role, **claims))
        assert response.status_code == 403, (role, response.text)
    assert (await client.get("/audit")).status_code == 401
    assert (await client.get("/audit", headers=client.token("admin"))).status_code == 200


async def test_filters_pagination_and_the_query_is_itself_audited(client, database):
    await _seed(database)
    admin = client.token("admin")
    page = (await client.get("/audit", params={"record_type": "patient", "limit": 2, "offset": 1},
                             headers=admin)).json()
    assert page["total"] == 5
    assert [i["record_id"] for i in page["items"]] == ["p1", "p2"]
    assert page["items"][0]["roles"] == ["secretary"]

    only = (await client.get("/audit", params={"record_type": "care_request", "record_id": "r1"},
                             headers=admin)).json()
    assert [(i["subject"], i["action"], i["purpose"]) for i in only["items"]] == [("reg-1", "create", "intake")]
    assert (await client.get("/audit", params={"subject": "reg-1"}, headers=admin)).json()["total"] == 1

    now = datetime.now(UTC)
    future = (await client.get("/audit", params={"from": (now + timedelta(hours=1)).isoformat()},
                               headers=admin)).json()
    assert future["total"] == 0
    past = (await client.get("/audit", params={"to": (now - timedelta(hours=1)).isoformat(),
                                               "record_type": "patient"}, headers=admin)).json()
    assert past["total"] == 0
    window = (await client.get("/audit", params={"from": (now - timedelta(hours=1)).isoformat(),
                                                 "to": (now + timedelta(hours=1)).isoformat(),
                                                 "record_type": "patient"}, headers=admin)).json()
    assert window["total"] == 5

    reviews = (await client.get("/audit", params={"record_type": "audit_log"},
                                headers={**admin, "X-Purpose": "patient-request"})).json()
    assert [i["record_id"] for i in reviews["items"]][:2] == ["patient/*", "care_request/r1"]
    assert all(i["subject"] == "admin-user" and i["action"] == "read" for i in reviews["items"])
    last = (await client.get("/audit", params={"record_type": "audit_log", "offset": reviews["total"]},
                             headers=admin)).json()["items"]
    assert [(i["record_id"], i["purpose"]) for i in last] == [("audit_log/*", "audit review [patient-request]")]


async def test_bad_filters_and_unknown_purposes_are_problems_naming_the_field(client):
    admin = client.token("admin")
    cases = [({"limit": 0}, "limit"), ({"from": "yesterday"}, "from"), ({"to": "2026-11-24T10:00:00"}, "to"),
             ({"record_type": "Patient; DROP"}, "record_type")]
    for params, field in cases:
        response = await client.get("/audit", params=params, headers=admin)
        assert response.status_code == 422, (params, response.text)
        assert field in response.text
    response = await client.get("/audit", headers={**admin, "X-Purpose": "curiosity"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "X-Purpose"
