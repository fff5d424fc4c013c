"""Browser tests of the web console: the broker, every service and the console as their own processes (as
`cpts run` starts them, on SQLite), a small territory seeded through the APIs, and Debian's headless Chromium
driven by Playwright (never `playwright install`: `make setup` installs the `chromium` package)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from cpts_platform.auth import LocalIssuer
from cpts_platform.dev.broker import free_port
from cpts_platform.testing import wait_for

CHROMIUM = Path(os.environ.get("CPTS_E2E_CHROMIUM", "/usr/bin/chromium"))
SERVICES = ["registry", "snp-dispatch", "patient-matching", "indicators"]
PROCESSES = [*SERVICES, "console"]
CPTS_ID = "690049999"  # the console's demo CPTS: its demo users are scoped to it
DEPARTEMENT = "69"


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


@dataclass
class Territory:
    """What the seed made: the CPTS's GPs (the first is the console's demo doctor) and their slots."""

    gps: list[dict]
    commune_name: str
    slots: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def demo_doctor(self) -> dict:
        return self.gps[0]


class ConsoleStack:
    """Every service and the console, each as `cpts serve NAME` in its own process."""

    def __init__(self, *, var_dir: Path, bootstrap: str) -> None:
        self.var_dir = var_dir
        self.ports = {name: free_port() for name in PROCESSES}
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = os.environ.copy()
        self.env.update({
            "CPTS_PROFILE": "local", "CPTS_VAR_DIR": str(var_dir), "CPTS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CPTS_KAFKA_TOPIC_PREFIX": f"e2e{uuid.uuid4().hex[:8]}.",
            "CPTS_OUTBOX_POLL_INTERVAL_SECONDS": "0.1", "CPTS_LOG_LEVEL": "WARNING",
        })
        for name in SERVICES:
            self.env[f"CPTS_{env_name(name)}_HTTP_PORT"] = str(self.ports[name])
            database = var_dir / f"{name}.db"
            self.env[f"CPTS_{env_name(name)}_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
            self.env[f"CPTS_CONSOLE_{env_name(name)}_URL"] = self.url(name)
        self.env["CPTS_CONSOLE_HTTP_PORT"] = str(self.ports["console"])
        self.issuer = LocalIssuer(var_dir / "local-issuer")
        self.issuer.ensure_key()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def headers(self, role: str, **scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.mint(subject=f'e2e-{role}', roles=[role], **scope)}"}

    def start(self) -> None:
        for name in PROCESSES:
            log = open(self.var_dir / f"{name}.log", "ab")
            self.processes[name] = subprocess.Popen([sys.executable, "-m", "cpts_cli.main", "serve", name],
                                                    env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        pending = set(PROCESSES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited: {self.log(name)[-2000:]}")
                try:
                    if httpx.get(f"{self.url(name)}/readyz", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise AssertionError(f"not ready: {pending}")

    def log(self, name: str) -> str:
        path = self.var_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def seed(self) -> Territory:
        """A CPTS on the communes of three GPs of a generated RPPS extract; all three take part in the SAS,
        the first (the console's demo doctor) also takes new MT patients; two of them publish slots."""
        extract = self.var_dir / "extract.txt"
        cli = [sys.executable, "-m", "cpts_cli.main", "registry"]
        quiet = {"check": True, "env": self.env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([*cli, "generate-demo", str(extract), "--rows", "80", "--departement", DEPARTEMENT,
                        "--seed", "7"], **quiet)
        subprocess.run([*cli, "import-rpps", str(extract), "--departement", DEPARTEMENT, "--show", "0"],
                       **quiet)
        admin = self.headers("admin")
        registry = self.url("registry")
        found = httpx.get(f"{registry}/professionals", headers=admin,
                          params={"profession": "10", "specialty": "SM54", "limit": 100}).json()["items"]
        by_commune: dict[str, list[dict]] = {}
        for gp in found:
            if gp["commune_insee"]:
                by_commune.setdefault(gp["commune_insee"], []).append(gp)
        commune, gps = max(by_commune.items(), key=lambda item: len(item[1]))
        gps = sorted(gps, key=lambda g: g["idnps"])[:3]
        assert len(gps) >= 2, "the generated extract has GPs sharing a commune"
        created = httpx.post(f"{registry}/cpts", headers=admin, json={
            "cpts_id": CPTS_ID, "name": "CPTS de test", "communes": [commune], "stage": "aci_signed",
            "aci_signed_on": "2024-03-01", "missions": ["1a-medecin-traitant", "1b-soins-non-programmes"]})
        assert created.status_code == 201, created.text
        for i, gp in enumerate(gps):
            httpx.put(f"{registry}/cpts/{CPTS_ID}/members/{gp['idnps']}", headers=admin,
                      json={"status": "active"}).raise_for_status()
            httpx.put(f"{registry}/professionals/{gp['idnps']}/sas-participation", headers=admin, json={
                "mode": "cpts", "hours_per_week": 3, "start_date": "2025-09-01", "accepts_en_sus": i == 2,
                "en_sus_weekly_cap": 5 if i == 2 else None}).raise_for_status()
        httpx.put(f"{registry}/professionals/{gps[0]['idnps']}/mt-capacity", headers=admin, json={
            "accepting": True, "new_patients_per_month": 5, "publics": ["adults"]}).raise_for_status()
        commune_name = httpx.get(f"{registry}/communes/{commune}", headers=admin).json()["name"]
        territory = Territory(gps=gps, commune_name=commune_name)

        snp = self.url("snp-dispatch")
        secretary = self.headers("secretary", cpts_ids=[CPTS_ID])
        wait_for(lambda: httpx.get(f"{snp}/effecteurs", headers=secretary,
                                   params={"cpts_id": CPTS_ID, "sas_participant": True}).json(),
                 lambda known: len([e for e in known if e["sites"]]) == len(gps), timeout=60, interval=0.5)
        start = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        for gp in gps[:2]:
            site = httpx.get(f"{snp}/effecteurs/{gp['idnps']}", headers=secretary).json()["sites"][0]
            doctor = self.headers("professional", idnps=gp["idnps"])
            published = httpx.post(f"{snp}/slots", headers=doctor, json={
                "idnps": gp["idnps"], "site_id": site["site_id"], "slots": [
                    {"start": (start + timedelta(minutes=15 * k)).isoformat(),
                     "end": (start + timedelta(minutes=15 * (k + 1))).isoformat(),
                     "visibility": ["SNP", "CPTS", "PRO"]} for k in range(4)]})
            assert published.status_code == 201, published.text
            territory.slots[gp["idnps"]] = sorted(published.json(), key=lambda s: s["start"])

        coordinator = self.headers("coordinator", cpts_ids=[CPTS_ID])
        matching_gp = f"{self.url('patient-matching')}/gps/{gps[0]['idnps']}"
        wait_for(lambda: httpx.get(matching_gp, headers=coordinator),
                 lambda r: r.status_code == 200 and r.json()["accepting"], timeout=60, interval=0.5)
        ars = self.headers("ars", departements=[DEPARTEMENT])
        wait_for(lambda: httpx.get(f"{self.url('indicators')}/indicators/cpts/{CPTS_ID}", headers=ars),
                 lambda r: r.status_code == 200, timeout=60, interval=0.5)
        return territory


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the web console in headless Chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def console_stack(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    stack = ConsoleStack(var_dir=tmp_path_factory.mktemp("e2e-stack"), bootstrap=kafka_broker)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def territory(console_stack: ConsoleStack) -> Territory:
    return console_stack.seed()


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an event loop running while it is open, which would break
    the `asyncio.run` of the system tests that run after this folder."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make setup` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--lang=fr-FR"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def login(browser, console_stack: ConsoleStack, territory: Territory, request: pytest.FixtureRequest,
          tmp_path: Path) -> Iterator[Callable]:
    """login("regulatrice") -> a page of a fresh browser context logged in as that demo user. On failure,
    every page of the test is saved as a screenshot in the test's tmp_path."""
    contexts = []

    def open_as(user: str, *, width: int = 1280):
        context = browser.new_context(locale="fr-FR", timezone_id="Europe/Paris",
                                      viewport={"width": width, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append((user, context))
        page = context.new_page()
        page.goto(console_stack.url("console") + "/")
        page.locator(f'button[data-user="{user}"]').click()
        page.locator("#nav a").first.wait_for()
        return page

    yield open_as
    failed = getattr(request.node, "rep_call", None)
    for user, context in contexts:
        if failed is not None and failed.failed:
            for i, page in enumerate(context.pages):
                path = tmp_path / f"{user}-{i}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot: {path}")
        context.close()
