"""Readiness while the broker is away: `/readyz` reports the full state (503, the broker named), while
`/readyz/traffic`, the view the Kubernetes readiness probe uses, only requires the database (200)."""

from __future__ import annotations

import pytest

from cpts_platform.dev.broker import LocalBroker, free_port
from cpts_platform.testing import eventually, running_service, settings_for
from cpts_registry.app import service


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test alone, since the test stops it."""
    broker = LocalBroker(port=free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_broker_outage_fails_readyz_but_not_the_traffic_view(database_url, own_broker, topic_prefix,
                                                                   tmp_path, local_issuer):
    settings = settings_for(service, database_url=database_url, kafka_broker=own_broker.bootstrap_servers,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        for path in ("/readyz", "/readyz/traffic"):
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}

        own_broker.stop()

        async def readyz_fails():
            response = await client.get("/readyz")
            return response if response.status_code == 503 else None

        body = (await eventually(readyz_fails, timeout=20)).json()
        assert body == {"status": "not ready", "checks": {"database": "ok", "broker": "unreachable"}}
        traffic = await client.get("/readyz/traffic")
        assert traffic.status_code == 200
        assert traffic.json() == {"status": "ready", "checks": {"database": "ok", "broker": "unreachable"}}
        # The API serves meanwhile: a read, with a token.
        token = local_issuer.mint(subject="u", roles=["coordinator"], cpts_ids=["690049999"])
        listing = await client.get("/professionals", headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200, listing.text

        own_broker.start()

        async def readyz_back():
            return (await client.get("/readyz")).status_code == 200

        await eventually(readyz_back, timeout=30)


async def test_traffic_view_fails_without_the_database(kafka_broker, topic_prefix, tmp_path):
    settings = settings_for(service, database_url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
                            kafka_broker=kafka_broker, topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    async with running_service(service, settings) as client:
        runtime = client.app.state.runtime

        async def database_away() -> None:
            raise ConnectionRefusedError("database away")

        runtime.database.ping = database_away
        for path in ("/readyz", "/readyz/traffic"):
            response = await client.get(path)
            assert response.status_code == 503
            assert response.json()["checks"]["database"] == "unreachable (ConnectionRefusedError)"
