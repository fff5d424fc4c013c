"""System-test harness: the real broker and every service as its own process, as `cpts run` starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cpts_platform.auth import LocalIssuer
from cpts_platform.dev.broker import free_port
from cpts_platform.testing import _pg, create_postgres_database, drop_postgres_database

SERVICES = ["registry", "snp-dispatch", "patient-matching", "indicators"]


def env_name(service: str) -> str:
    return service.upper().replace("-", "_")


class Stack:
    def __init__(self, *, var_dir: Path, bootstrap: str, database_urls: dict[str, str], topic_prefix: str,
                 console: bool = False) -> None:
        """`console`: the web console too (`start("console")`), forwarding to these services."""
        self.var_dir = var_dir
        self.bootstrap = bootstrap
        self.database_urls = database_urls
        self.ports = {name: free_port() for name in [*SERVICES, *(["console"] if console else [])]}
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = os.environ.copy()
        self.env.update({
            "CPTS_PROFILE": "local",
            "CPTS_VAR_DIR": str(var_dir),
            "CPTS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CPTS_KAFKA_TOPIC_PREFIX": topic_prefix,
            "CPTS_OUTBOX_POLL_INTERVAL_SECONDS": "0.1",
            "CPTS_LOG_LEVEL": "WARNING",
        })
        for name in SERVICES:
            self.env[f"CPTS_{env_name(name)}_HTTP_PORT"] = str(self.ports[name])
            self.env[f"CPTS_{env_name(name)}_DATABASE_URL"] = database_urls[name]
            if console:
                self.env[f"CPTS_CONSOLE_{env_name(name)}_URL"] = self.url(name)
        if console:
            self.env["CPTS_CONSOLE_HTTP_PORT"] = str(self.ports["console"])
        self.issuer = LocalIssuer(var_dir / "local-issuer")
        self.issuer.ensure_key()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def token(self, role: str, **scope) -> str:
        return self.issuer.mint(subject=f"test-{role}", roles=[role], **scope)

    def start(self, service: str) -> None:
        log = open(self.var_dir / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "cpts_cli.main", "serve", service], env=self.env, stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def wait_ready(self, *services: str, timeout: float = 120.0) -> None:
        pending = set(services or self.processes)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)[-2000:]}")
                try:
                    if httpx.get(f"{self.url(name)}/readyz", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        if pending:
            raise AssertionError(f"not ready within {timeout} s: {pending}")

    def log(self, service: str) -> str:
        path = self.var_dir / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request, tmp_path, kafka_broker, topic_prefix):
    """Every service as its own process on the real broker, on SQLite and (when reachable) PostgreSQL."""
    created: list[str] = []
    if request.param == "postgresql":
        if not _pg():
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
        urls = {}
        for name in SERVICES:
            db_name, url = create_postgres_database()
            created.append(db_name)
            urls[name] = url
    else:
        urls = {name: f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}" for name in SERVICES}
    s = Stack(var_dir=tmp_path, bootstrap=kafka_broker, database_urls=urls, topic_prefix=topic_prefix)
    try:
        yield s
    finally:
        s.stop()
        for db_name in created:
            drop_postgres_database(db_name)
