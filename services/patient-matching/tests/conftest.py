"""A patient-matching service running on the test database (SQLite, and PostgreSQL when reachable) and broker,
with tokens from the local issuer and helpers to enrol patients and read the outbox and the audit trail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pytest
import sqlalchemy as sa

from cpts_patient_matching.app import service
from cpts_platform.identifiers import nir_key
from cpts_patient_matching.repository import GpView
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import DatabaseAway, running_service, settings_for

CPTS = "690049999"
OTHER_CPTS = "690048888"
T = TypeVar("T")


def nir(sex: str = "2", year: str = "50", month: str = "03", place: str = "69266", order: str = "012") -> str:
    """A NIR with its right key."""
    body = f"{sex}{year}{month}{place}{order}"
    return body + nir_key(body)


def patient_body(*, identity: dict | None = None, **changes) -> dict:
    """An enrolment body: Rose Lambert, born 1950, Villeurbanne, consenting; `identity` items override."""
    body = {
        "identity": {"birth_name": "Lambert", "first_names": "Rose", "birth_date": "1950-03-02", "sex": "F",
                     "phone": "0612345678", **(identity or {})},
        "commune_insee": "69266",
        "consent": True,
    }
    body.update(changes)
    return body


@dataclass
class Matching:
    client: object
    database: object
    issuer: LocalIssuer
    cpts: str = CPTS
    other_cpts: str = OTHER_CPTS
    body = staticmethod(patient_body)
    nir = staticmethod(nir)

    def __post_init__(self) -> None:
        self._away = DatabaseAway(self.database)

    async def away_after_commit(self, request: Awaitable[T]) -> T:
        """Send `request` with the database going away right after the commit of its command."""
        return await self._away.after_commit(request)

    def headers(self, role: str, **claims) -> dict[str, str]:
        token = self.issuer.mint(subject=f"{role}-user", roles=[role], **claims)
        return {"Authorization": f"Bearer {token}"}

    @property
    def secretary(self) -> dict[str, str]:
        return self.headers("secretary", cpts_ids=[CPTS])

    @property
    def coordinator(self) -> dict[str, str]:
        return self.headers("coordinator", cpts_ids=[CPTS])

    @property
    def other_coordinator(self) -> dict[str, str]:
        return self.headers("coordinator", cpts_ids=[OTHER_CPTS])

    @property
    def ars(self) -> dict[str, str]:
        return self.headers("ars", departements=["69"])

    def gp(self, idnps: str) -> dict[str, str]:
        return self.headers("professional", idnps=idnps)

    async def enrol(self, body: dict | None = None, *, cpts: str = CPTS, expect: int = 201, **changes
                    ) -> dict:
        response = await self.client.post(f"/cpts/{cpts}/patients", json=body or patient_body(**changes),
                                          headers=self.secretary)
        assert response.status_code == expect, response.text
        return response.json()

    async def events(self, kind: str | None = None) -> list[tuple[str, dict]]:
        """(type, payload) of the outbox rows, in order; `kind` filters on a part of the type."""
        async with self.database.sessions() as session:
            query = sa.text("SELECT event_type, value FROM outbox_event ORDER BY id")
            rows = (await session.execute(query)).all()
        return [(t, json.loads(v)) for t, v in rows if kind is None or kind in t]

    async def audit(self, record_id: str) -> list[tuple[str, str, str]]:
        """(subject, action, purpose) of the audit lines of a record, in order."""
        async with self.database.sessions() as session:
            rows = (await session.execute(sa.text(
                "SELECT subject, action, purpose FROM audit_log WHERE record_id = :id ORDER BY id"),
                {"id": record_id})).all()
        return [tuple(r) for r in rows]

    async def add_gp(self, idnps: str, *, commune: str = "69266", lat: float | None = None,
                     lon: float | None = None, capacity: int = 2, publics: list[str] | None = None,
                     cpts_ids: list[str] | None = None) -> None:
        """A GP with capacity straight into the read model (rounds tests use registry events instead)."""
        async with self.database.transaction() as session:
            session.add(GpView(idnps=idnps, family_name=f"Médecin{idnps[-2:]}", given_name="Dr",
                               commune_insee=commune, cpts_ids=cpts_ids or [CPTS], active=True,
                               accepting=True, new_patients_per_month=capacity, publics=publics or ["adults"],
                               lat=lat, lon=lon, updated_at=datetime.now(UTC)))



@asynccontextmanager
async def matching_service(database_url: str, kafka_broker: str, topic_prefix: str, var_dir, **overrides
                           ) -> AsyncIterator[Matching]:
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=var_dir, **overrides)
    async with running_service(service, settings) as client:
        yield Matching(client=client, database=client.app.state.runtime.database,
                       issuer=LocalIssuer(var_dir / "local-issuer"))


@pytest.fixture
async def matching(database_url, kafka_broker, topic_prefix, tmp_path):
    """The service without its background task (tests drive expiry and scheduled jobs themselves)."""
    async with matching_service(database_url, kafka_broker, topic_prefix, tmp_path / "var",
                                scheduler_enabled=False) as m:
        yield m


@pytest.fixture
def start_matching(database_url, kafka_broker, topic_prefix, tmp_path):
    """`async with start_matching(**settings) as m`: the service with other settings (background task...)."""
    return lambda **overrides: matching_service(database_url, kafka_broker, topic_prefix, tmp_path / "var",
                                                **overrides)
