"""An snp-dispatch service running on the test database and broker, with a small territory in its read model."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa

from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import DatabaseAway, running_service, settings_for
from cpts_snp_dispatch.app import service
from cpts_snp_dispatch.repository import CptsView, ProfessionalView

CPTS = "690049999"
OTHER_CPTS = "690048888"
T = TypeVar("T")

# Lyon-area GPs: (idnps, family name, commune, lat, lon, SAS participant, CPTS, accepts en sus / weekly cap)
TERRITORY = [
    ("810100000001", "Arnaud", "69266", 45.7660, 4.8790, True, [CPTS], (True, 2)),     # Villeurbanne
    ("810100000002", "Bernard", "69259", 45.7370, 4.9160, True, [CPTS], (False, None)),  # Vaulx-en-Velin
    ("810100000003", "Chevalier", "69029", 45.7150, 4.9000, False, [CPTS], (False, None)),  # Bron
    ("810100000004", "Dupont", "69290", 45.7850, 4.9810, False, [OTHER_CPTS], (False, None)),  # Meyzieu
    ("810100000005", "Etienne", "69286", 45.7550, 5.0200, True, [], (True, None)),  # Décines
    ("810100000006", "Faure", "69123", 45.7600, 4.8350, False, [], (False, None)),  # Lyon
]


@dataclass
class Dispatch:
    client: object
    database: object
    issuer: LocalIssuer
    cpts: str = CPTS

    def __post_init__(self) -> None:
        self._away = DatabaseAway(self.database)

    async def away_after_commit(self, request: Awaitable[T]) -> T:
        """Send `request` with the database going away right after the commit of its command."""
        return await self._away.after_commit(request)

    @staticmethod
    def at(hours: float) -> str:
        return at(hours)

    def headers(self, role: str, **claims) -> dict[str, str]:
        token = self.issuer.mint(subject=f"{role}-user", roles=[role], **claims)
        return {"Authorization": f"Bearer {token}"}

    @property
    def regulator(self) -> dict[str, str]:
        return self.headers("regulator", departements=["69"])

    @property
    def secretary(self) -> dict[str, str]:
        return self.headers("secretary", cpts_ids=[CPTS])

    def professional(self, idnps: str) -> dict[str, str]:
        return self.headers("professional", idnps=idnps)

    async def events(self, kind: str | None = None) -> list[str]:
        async with self.database.sessions() as session:
            query = sa.text("SELECT event_type FROM outbox_event ORDER BY id")
            types = [r[0] for r in (await session.execute(query)).all()]
        return [t for t in types if kind is None or kind in t]


@pytest.fixture
async def dispatch(database_url, kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    async with running_service(service, settings) as client:
        database = client.app.state.runtime.database
        now = datetime.now(UTC)
        async with database.transaction() as session:
            for idnps, name, commune, lat, lon, participant, cpts_ids, (en_sus, cap) in TERRITORY:
                session.add(ProfessionalView(
                    idnps=idnps, family_name=name, given_name="Dr", profession_code="10", specialty_code="SM54",
                    commune_insee=commune, cpts_ids=cpts_ids, sas_participant=participant, accepts_en_sus=en_sus,
                    en_sus_weekly_cap=cap, updated_at=now,
                    sites=[{"site_id": f"S{idnps[-2:]}", "commune_insee": commune, "lat": lat, "lon": lon}]))
            session.add(CptsView(cpts_id=CPTS, name="CPTS de l'Est lyonnais", communes=["69266", "69259", "69029"],
                                 departements=["69"], updated_at=now))
        yield Dispatch(client=client, database=database, issuer=issuer)



def at(hours: float) -> str:
    """An instant `hours` from now, on a 5-minute boundary, as ISO 8601 with offset."""
    moment = datetime.now(UTC) + timedelta(hours=hours)
    moment = moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)
    return moment.isoformat()
