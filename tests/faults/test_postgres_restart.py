"""PostgreSQL stopped and started again under load (a private cluster, never the shared one): requests
answer 503 with Retry-After at once instead of hanging, the processes stay up, and everything works again
afterwards without restarting them; the events written around the outage are applied once."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cpts_platform.dev.broker import free_port
from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

PG_BIN = Path(os.environ.get("CPTS_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
OUTAGE_SECONDS = float(os.environ.get("CPTS_FAULTS_POSTGRES_OUTAGE_SECONDS", "5"))
FAIL_FAST_SECONDS = 5.0
SERVICES = ["registry", "snp-dispatch"]


class PrivateCluster:
    """A throw-away PostgreSQL cluster on a free port, run as the `postgres` user when we are root."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
            pytest.skip(f"no PostgreSQL server binaries in {PG_BIN}")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a postgres user")
            if not shutil.which("runuser"):
                pytest.skip("running as root without runuser")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="cpts-faults-pg-"))
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, *args], check=check, capture_output=True, text=True, timeout=120
        )

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        import asyncpg

        async def create() -> None:
            connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        asyncio.run(create())
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    cluster = PrivateCluster()
    try:
        cluster.init()
    except subprocess.CalledProcessError as exc:
        cluster.remove()
        pytest.skip(f"cannot start a private PostgreSQL cluster: {exc.stderr[-500:]}")
    try:
        yield cluster
    finally:
        cluster.remove()


@dataclass
class Answer:
    at: float
    op: str
    status: int  # 0: no answer (transport error or timeout)
    seconds: float
    retry_after: str | None


class Load:
    def __init__(self, stack, cpts: str) -> None:
        self.stack = stack
        self.cpts = cpts
        self.answers: list[Answer] = []
        self.registered: list[str] = []  # acknowledged (2xx)
        self.attempted: list[str] = []
        self.stop = False
        self.admin = {"Authorization": f"Bearer {stack.token('admin')}"}
        self.regulator = {"Authorization": f"Bearer {stack.token('regulator', departements=['69'])}"}

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=15) as client:
            while not self.stop:
                n += 1
                idnps = f"8{20_000_000_000 + n:011d}"
                self.attempted.append(idnps)
                self._call(
                    client,
                    "write",
                    "POST",
                    f"{self.stack.url('registry')}/professionals",
                    self.admin,
                    json={
                        "idnps": idnps,
                        "family_name": "Test",
                        "given_name": f"P{n}",
                        "profession_code": "10",
                        "specialty_code": "SM54",
                        "cpts_ids": [self.cpts],
                    },
                    on_success=lambda idnps=idnps: self.registered.append(idnps),
                )
                self._call(
                    client,
                    "read",
                    "GET",
                    f"{self.stack.url('registry')}/professionals",
                    self.admin,
                    params={"cpts_id": self.cpts, "limit": 5},
                )
                self._call(
                    client,
                    "read",
                    "GET",
                    f"{self.stack.url('snp-dispatch')}/effecteurs",
                    self.regulator,
                    params={"cpts_id": self.cpts, "limit": 5},
                )
                time.sleep(0.05)

    def _call(self, client, op, method, url, headers, on_success=None, **kwargs) -> None:
        sent = time.monotonic()
        try:
            response = client.request(method, url, headers=headers, **kwargs)
            status, retry_after = response.status_code, response.headers.get("retry-after")
        except httpx.TransportError:
            status, retry_after = 0, None
        self.answers.append(Answer(sent, op, status, time.monotonic() - sent, retry_after))
        if 200 <= status < 300 and on_success:
            on_success()


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True, ids=["private-postgresql"])  # moved there below
def test_a_postgres_restart_answers_503_fast_and_recovers_without_restarting(stack, private_postgres, faults):
    for name in SERVICES:
        url = private_postgres.create_database(name.replace("-", "_"))
        stack.database_urls[name] = url
        stack.env[f"CPTS_{name.upper().replace('-', '_')}_DATABASE_URL"] = url
        stack.start(name)
    stack.wait_ready(*SERVICES, timeout=180)
    cpts = faults.CPTS
    admin = faults.auth(stack, "admin")
    created = httpx.post(
        f"{stack.url('registry')}/cpts",
        headers=admin,
        json={"cpts_id": cpts, "name": "CPTS test", "communes": ["69259"]},
        timeout=30,
    )
    assert created.status_code == 201, created.text

    load = Load(stack, cpts)
    worker = threading.Thread(target=load.run)
    worker.start()
    try:
        time.sleep(3)
        stopping = time.monotonic()
        private_postgres.stop("fast")
        down_at = time.monotonic()
        readyz = wait_for(
            lambda: httpx.get(f"{stack.url('registry')}/readyz", timeout=5),
            lambda r: r.status_code == 503,
            timeout=10,
        )
        assert readyz.json()["checks"]["database"].startswith("unreachable")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        up_at = time.monotonic()
        private_postgres.start()
        back_at = time.monotonic()

        def served_again():
            recent = [a for a in load.answers if a.at > back_at]
            return {
                op for op in ("read", "write") if any(200 <= a.status < 300 for a in recent if a.op == op)
            }

        wait_for(served_again, lambda ops: ops == {"read", "write"}, timeout=60)
        recovered = round(time.monotonic() - back_at, 1)
        time.sleep(1)
    finally:
        load.stop = True
        worker.join(timeout=30)

    assert all(stack.processes[name].poll() is None for name in SERVICES)
    during = [a for a in load.answers if down_at <= a.at and a.at + a.seconds <= up_at]
    assert during, "no request during the outage"
    assert all(a.status == 503 and a.retry_after for a in during), sorted({(a.op, a.status) for a in during})
    slowest = max(a.seconds for a in during)
    assert slowest < FAIL_FAST_SECONDS
    assert not [a for a in load.answers if a.status == 0 or a.status >= 500 and a.status != 503]
    # Straddling the stop, the start: no hang either.
    assert max(a.seconds for a in load.answers) < FAIL_FAST_SECONDS + 5

    # Every acknowledged write is in the registry. A write whose commit the stop cut off may be there too,
    # though it was not acknowledged (its outcome is unknown to the client), and only such a write.
    stored = {
        row[0] for row in faults.query(stack.database_urls["registry"], "SELECT idnps FROM professional")
    }
    assert not set(load.registered) - stored, "acknowledged writes lost"
    unacknowledged = stored - set(load.registered)
    assert unacknowledged <= set(load.attempted) and len(unacknowledged) <= 2, sorted(unacknowledged)

    # The events written before and after the outage reach snp-dispatch once each: its view holds what the
    # registry holds.
    faults.wait_outboxes_drained(stack, ["registry"], timeout=60)
    regulator = faults.auth(stack, "regulator", departements=["69"])

    def viewed() -> set[str]:
        return {
            row[0]
            for row in faults.query(stack.database_urls["snp-dispatch"], "SELECT idnps FROM professional_view")
        }

    deadline = time.monotonic() + 60
    while (seen := viewed()) != stored and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seen == stored, (
        f"missing from the view: {sorted(stored - seen)}, unknown: {sorted(seen - stored)}; "
        f"snp-dispatch's log: {stack.log('snp-dispatch')[-4000:]}"
    )
    assert (
        httpx.get(
            f"{stack.url('snp-dispatch')}/effecteurs/{load.registered[-1]}", headers=regulator
        ).status_code
        == 200
    )
    faults.figures(
        "postgres restart",
        outage_seconds=round(up_at - down_at, 1),
        stop_seconds=round(down_at - stopping, 1),
        requests=len(load.answers),
        answered_503_during_outage=len(during),
        slowest_503_ms=round(slowest * 1000),
        median_503_ms=round(sorted(a.seconds for a in during)[len(during) // 2] * 1000),
        recovered_seconds=recovered,
        professionals_registered=len(load.registered),
        stored_unacknowledged=len(unacknowledged),
    )
