"""Audit trail of patient records: who read or changed which record, when, in which role and why.

A service that holds patient identities adds the table to its metadata and calls `record()` (or
`record_many()`) in the same session as the read or the write, so that a record is never served without its
audit line. A list read writes one line per record served.

The purpose of a line is the route's (e.g. "regulation: search", "enrolment"); a client may declare why it
reads with the `X-Purpose` header, one of `DECLARED_PURPOSES` (anything else is a 422), and the line then reads
"<route purpose> [<declared purpose>]". Services install `capture_declared_purpose` on their routers.

The table is only ever appended to: no code path updates or deletes its rows, and the database refuses it
(triggers created by each service's migration from `append_only_statements()`). `audit_router()` gives the
admins `GET /audit`, itself audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.auth import Principal, Role, require_roles
from cpts_platform.db import BigId, UtcDateTime
from cpts_platform.problems import ProblemError

AUDIT_TABLE = "audit_log"

# Why a client may declare it reads a record (`X-Purpose`).
DECLARED_PURPOSES = frozenset({
    "regulation",        # SAS regulation of an unscheduled-care request
    "care",              # the professional who sees the patient
    "follow-up",         # follow-up of a request or of a patient on the waiting list
    "enrolment",         # enrolment or correction at the CPTS's guichet
    "matching",          # matching rounds and proposals to GPs
    "duplicate-review",  # review of possible duplicates
    "patient-request",   # the patient exercises their right of access or rectification
    "quality",           # quality review by the CPTS
    "support",           # technical support on a user's request
    "audit",             # review of the audit trail itself
})

# For a route taking the purpose as a parameter: one of the same list, never free text (which could name a patient).
DeclaredPurpose = Literal[tuple(sorted(DECLARED_PURPOSES))]  # type: ignore[valid-type]
PurposeParameter = Annotated[DeclaredPurpose, Query(
    description="Finalité de la lecture, tracée : une de la liste (pas de texte libre).")]

_declared: ContextVar[str | None] = ContextVar("declared_purpose", default=None)


def add_audit_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        AUDIT_TABLE,
        metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("roles", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("record_type", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Index("ix_audit_log_record", "record_type", "record_id"),
        sa.Index("ix_audit_log_subject", "subject"),
        sa.Index("ix_audit_log_at", "at"),
    )


def _table() -> sa.TableClause:
    return sa.table(AUDIT_TABLE, sa.column("id", BigId), sa.column("at", UtcDateTime()), sa.column("subject"),
                    sa.column("roles"), sa.column("action"), sa.column("record_type"), sa.column("record_id"),
                    sa.column("purpose"))


# --- Purpose ------------------------------------------------------------------------------------------------


async def capture_declared_purpose(
    x_purpose: Annotated[str | None, Header(
        alias="X-Purpose", max_length=40,
        description="Finalité déclarée de l'accès, tracée avec celle de la route : "
                    + ", ".join(sorted(DECLARED_PURPOSES)) + ".")] = None,
) -> AsyncIterator[None]:
    """Router dependency: validate the declared purpose of the request and keep it for its audit lines (for
    the request only)."""
    if x_purpose is not None and x_purpose not in DECLARED_PURPOSES:
        raise ProblemError(422, "Unknown purpose.", errors=[{
            "field": "X-Purpose", "in": "header",
            "message": "must be one of " + ", ".join(sorted(DECLARED_PURPOSES))}])
    _declared.set(x_purpose)
    try:
        yield
    finally:
        _declared.set(None)


def effective_purpose(route_purpose: str) -> str:
    """The route's purpose, with the one the client declared for this request if any."""
    declared = _declared.get()
    purpose = route_purpose if declared is None else f"{route_purpose} [{declared}]"
    return purpose[:200]


# --- Writing ------------------------------------------------------------------------------------------------


def _roles(principal: Principal) -> str:
    return ",".join(sorted(principal.roles))[:200]


async def record(session: AsyncSession, principal: Principal, *, action: str, record_type: str, record_id: str,
                 purpose: str) -> None:
    """Append one audit line (in the caller's transaction)."""
    await record_many(session, principal, action=action, record_type=record_type, record_ids=[record_id],
                      purpose=purpose)


async def record_many(session: AsyncSession, principal: Principal, *, action: str, record_type: str,
                      record_ids: Sequence[str], purpose: str) -> None:
    """Append one audit line per record (in the caller's transaction, in one statement)."""
    if not record_ids:
        return
    now, roles, purpose = datetime.now(UTC), _roles(principal), effective_purpose(purpose)
    await session.execute(sa.insert(_table()), [
        {"at": now, "subject": principal.subject[:200], "roles": roles, "action": action[:20],
         "record_type": record_type, "record_id": record_id, "purpose": purpose} for record_id in record_ids])


# --- Append-only, enforced by the database ------------------------------------------------------------------

_MESSAGE = "audit_log is append-only"


def append_only_statements(dialect: str) -> list[str]:
    """DDL refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the audit table; run by a migration."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {AUDIT_TABLE}_no_{verb.lower()} BEFORE {verb} ON {AUDIT_TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END" for verb in ("UPDATE", "DELETE")]
    if dialect == "postgresql":
        return [
            (f"CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
             f"BEGIN RAISE EXCEPTION '{_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"),
            (f"CREATE TRIGGER {AUDIT_TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {AUDIT_TABLE} "
             f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_TABLE}_append_only()"),
            (f"CREATE TRIGGER {AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON {AUDIT_TABLE} "
             f"FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT_TABLE}_append_only()"),
        ]
    raise ValueError(f"no append-only triggers for {dialect}")


def drop_append_only_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_{verb}" for verb in ("update", "delete")]
    return [f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_update_delete ON {AUDIT_TABLE}",
            f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_truncate ON {AUDIT_TABLE}",
            f"DROP FUNCTION IF EXISTS {AUDIT_TABLE}_append_only()"]


# --- Query (admins) -----------------------------------------------------------------------------------------


class AuditEntry(BaseModel):
    id: int
    at: datetime
    subject: str
    roles: list[str]
    action: str
    record_type: str
    record_id: str
    purpose: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int = Field(description="Lignes correspondant aux filtres.")


Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


def audit_router() -> APIRouter:
    """`GET /audit`: the audit trail of the service, filtered and paginated (oldest first), for admins only;
    the query is itself audited (record type `audit_log`, record id `<type>/<id>` of the filter)."""
    router = APIRouter(tags=["traçabilité"])

    @router.get("/audit", response_model=AuditPage,
                summary="Le journal des accès aux dossiers patients (administrateurs ; consultation tracée).")
    async def query_audit(
        request: Request, principal: Admin,
        record_type: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
        record_id: Annotated[str | None, Query(max_length=64)] = None,
        subject: Annotated[str | None, Query(max_length=200)] = None,
        start: Annotated[datetime | None, Query(alias="from", description="Depuis (inclus).")] = None,
        end: Annotated[datetime | None, Query(alias="to", description="Jusqu'à (exclu).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> AuditPage:
        for name, value in (("from", start), ("to", end)):
            if value is not None and value.tzinfo is None:
                raise ProblemError(422, f"{name} needs a UTC offset.", errors=[
                    {"field": name, "in": "query", "message": "give a date-time with its offset"}])
        table = _table()
        conditions = []
        if record_type is not None:
            conditions.append(table.c.record_type == record_type)
        if record_id is not None:
            conditions.append(table.c.record_id == record_id)
        if subject is not None:
            conditions.append(table.c.subject == subject)
        if start is not None:
            conditions.append(table.c.at >= start.astimezone(UTC))
        if end is not None:
            conditions.append(table.c.at < end.astimezone(UTC))
        database = request.app.state.runtime.database
        async with database.transaction() as session:
            total = (await session.execute(sa.select(sa.func.count()).select_from(table).where(*conditions))
                     ).scalar_one()
            rows = (await session.execute(sa.select(table).where(*conditions).order_by(table.c.id)
                                          .limit(limit).offset(offset))).all()
            await record(session, principal, action="read", record_type=AUDIT_TABLE,
                         record_id=f"{record_type or '*'}/{record_id or '*'}"[:64], purpose="audit review")
        items = [AuditEntry(id=r.id, at=r.at, subject=r.subject, roles=[x for x in r.roles.split(",") if x],
                            action=r.action, record_type=r.record_type, record_id=r.record_id, purpose=r.purpose)
                 for r in rows]
        return AuditPage(items=items, total=total)

    return router
