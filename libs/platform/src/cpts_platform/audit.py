"""Audit trail of patient records: who read or changed which record, when, in which role and why.

A service that holds patient identities adds the table to its metadata and calls `record()` in the same
session as the read or the write, so that a record is never served without its audit line. The table is only
ever appended to; no code path updates or deletes its rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_platform.auth import Principal
from cpts_platform.db import BigId, UtcDateTime

AUDIT_TABLE = "audit_log"


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
    )


async def record(session: AsyncSession, principal: Principal, *, action: str, record_type: str, record_id: str,
                 purpose: str) -> None:
    """Append one audit line (in the caller's transaction)."""
    table = sa.table(AUDIT_TABLE, sa.column("at", UtcDateTime()), sa.column("subject"), sa.column("roles"), sa.column("action"),
                     sa.column("record_type"), sa.column("record_id"), sa.column("purpose"))
    await session.execute(sa.insert(table).values(
        at=datetime.now(UTC), subject=principal.subject, roles=",".join(sorted(principal.roles)), action=action,
        record_type=record_type, record_id=record_id, purpose=purpose))
