"""Browser tests of the web console: the broker, every service and the console as their own processes (as
`cpts run` starts them, on SQLite), a small territory seeded through the APIs, and Debian's headless Chromium
driven by Playwright (never `playwright install`: `make setup` installs the `chromium` package)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from cpts_platform.testing import wait_for
from tests.conftest import SERVICES, Stack

CHROMIUM = Path(os.environ.get("CPTS_E2E_CHROMIUM", "/usr/bin/chromium"))
PROCESSES = [*SERVICES, "console"]
CPTS_ID = "690049999"  # the console's demo CPTS: its demo users are scoped to it
DEPARTEMENT = "69"
REPO_ROOT = Path(__file__).resolve().parents[2]
TABLET_WIDTH = 820


@dataclass
class Territory:
    """What the seed made: the CPTS's GPs (the first is the console's demo doctor) and their slots."""

    gps: list[dict]
    commune_name: str
    slots: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def demo_doctor(self) -> dict:
        return self.gps[0]


class ConsoleStack(Stack):
    """The system tests' stack with the console, every process as `cpts serve NAME`, on SQLite."""

    def __init__(self, *, var_dir: Path, bootstrap: str) -> None:
        super().__init__(var_dir=var_dir, bootstrap=bootstrap, console=True,
                         database_urls={name: f"sqlite+aiosqlite:///{var_dir / (name + '.db')}"
                                        for name in SERVICES},
                         topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.")

    def headers(self, role: str, **scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **scope)}"}

    def publish(self, idnps: str, start: datetime, count: int) -> list[dict]:
        """`count` quarter-hour slots of the GP from `start`, visible by the SAS, the CPTS and professionals,
        published through snp-dispatch's API as the GP."""
        snp = self.url("snp-dispatch")
        site = httpx.get(f"{snp}/effecteurs/{idnps}", headers=self.headers("secretary", cpts_ids=[CPTS_ID]))
        published = httpx.post(f"{snp}/slots", headers=self.headers("professional", idnps=idnps), json={
            "idnps": idnps, "site_id": site.json()["sites"][0]["site_id"], "slots": [
                {"start": (start + timedelta(minutes=15 * k)).isoformat(),
                 "end": (start + timedelta(minutes=15 * (k + 1))).isoformat(),
                 "visibility": ["SNP", "CPTS", "PRO"]} for k in range(count)]})
        assert published.status_code == 201, published.text
        return sorted(published.json(), key=lambda s: s["start"])

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)
        self.wait_ready(*PROCESSES, timeout=180)  # a loaded CI machine starts slowly

    def seed(self) -> Territory:
        """A CPTS on the communes of three GPs of a generated RPPS extract; all three take part in the SAS,
        the first (the console's demo doctor) also takes new MT patients; two of them publish slots."""
        extract = self.var_dir / "extract.txt"
        cli = [sys.executable, "-m", "cpts_cli.main", "registry"]
        quiet = {"env": self.env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([*cli, "generate-demo", str(extract), "--rows", "80", "--departement", DEPARTEMENT,
                        "--seed", "7"], check=True, **quiet)
        subprocess.run([*cli, "import-rpps", str(extract), "--departement", DEPARTEMENT, "--show", "0"],
                       check=True, **quiet)
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
            territory.slots[gp["idnps"]] = self.publish(gp["idnps"], start, 4)

        coordinator = self.headers("coordinator", cpts_ids=[CPTS_ID])
        matching_gp = f"{self.url('patient-matching')}/gps/{gps[0]['idnps']}"
        wait_for(lambda: httpx.get(matching_gp, headers=coordinator),
                 lambda r: r.status_code == 200 and r.json()["accepting"], timeout=60, interval=0.5)
        ars = self.headers("ars", departements=[DEPARTEMENT])
        wait_for(lambda: httpx.get(f"{self.url('indicators')}/indicators/cpts/{CPTS_ID}", headers=ars),
                 lambda r: r.status_code == 200, timeout=60, interval=0.5)
        return territory


def pick_commune(page: Page, field_name: str, list_id: str, commune: str) -> None:
    page.get_by_role("combobox", name=field_name).fill(commune[:5])
    option = re.compile(rf"^{re.escape(commune)} \(")
    page.locator(f"#{list_id}").get_by_role("option", name=option).first.click()


def take_request(page: Page, *, family_name: str, commune: str) -> None:
    """Fill the intake form of the regulation screen and ask for slots."""
    page.get_by_role("textbox", name="Nom", exact=True).fill(family_name)
    page.get_by_role("textbox", name="Prénom").fill("Léon")
    page.get_by_role("textbox", name="Date de naissance").fill("1941-05-17")
    page.get_by_role("combobox", name="Sexe").select_option("M")
    pick_commune(page, "Commune ou code postal", "commune-list", commune)
    page.get_by_role("combobox", name="Motif", exact=True).select_option("fever")
    page.get_by_label("Pas de médecin traitant").check()
    page.get_by_role("button", name="Rechercher des créneaux").click()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the web console in headless Chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="package")
def console_stack(kafka_broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """One stack for the browser tests, stopped after them: each test makes its own requests, patients and
    slots, and books slots of its own."""
    stack = ConsoleStack(var_dir=tmp_path_factory.mktemp("e2e-stack"), bootstrap=kafka_broker)
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
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


class Screenshots:
    """Every screen of every role as a PNG test artifact, on success too: `<folder>/<width>/<role>-<screen>.png`
    under `CPTS_E2E_ARTIFACTS` (default `var/e2e-artifacts/` at the repository's root, git-ignored)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started = time.time()

    def path(self, name: str, width: int) -> Path:
        return self.folder / str(width) / f"{name}.png"

    def __call__(self, page, name: str, *, element=None) -> Path:
        """Save the page (whole height), or one element of it, as `<role>-<screen>`."""
        path = self.path(name, page.viewport_size["width"])
        path.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.fonts.ready.then(() => true)")
        if element is not None:
            element.scroll_into_view_if_needed()
            element.screenshot(path=str(path), animations="disabled")
        else:
            page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    def taken(self, name: str, width: int) -> bool:
        path = self.path(name, width)
        return path.is_file() and path.stat().st_mtime >= self.started - 1 and path.stat().st_size > 0


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    folder = Path(os.environ.get("CPTS_E2E_ARTIFACTS") or REPO_ROOT / "var" / "e2e-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return Screenshots(folder)


@pytest.fixture
def login(browser, console_stack: ConsoleStack, territory: Territory, request: pytest.FixtureRequest,
          screenshots: Screenshots) -> Iterator[Callable]:
    """login("regulatrice") -> a page of a fresh browser context logged in as that demo user. On failure,
    every page of the test is saved under `failures/` of the artifacts' folder."""
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
            test_name = re.sub(r"[^\w.-]+", "_", request.node.name)
            for i, page in enumerate(context.pages):
                path = screenshots.folder / "failures" / f"{test_name}-{user}-{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot: {path}")
        context.close()
