"""The indicators dashboard in headless Chromium against the whole stack: the ARS sees the value of the demo
CPTS move when its GPs publish slots, and the coordinator and the ARS open the annual ACI report of the CPTS
for a year through the console's proxy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from cpts_platform.testing import wait_for
from tests.e2e.conftest import CPTS_ID, DEPARTEMENT

pytestmark = [pytest.mark.system, pytest.mark.e2e]

SLOTS = "snp.slots.count"
REPORT_PATH = "/indicators/cpts/{cpts_id}/report/{year}"


def slots_offered(page: Page) -> int:
    """The dashboard's yearly number of SNP slots offered by the CPTS, read from its card (never masked)."""
    page.get_by_label("Période", exact=True).select_option("year")
    page.get_by_role("tab", name=re.compile("Soins non programmés")).click()
    value = page.locator(f'article[data-indicator="{SLOTS}"] .indicator-value')
    expect(value).to_have_text(re.compile(r"^\d+ créneaux$"))
    return int(value.inner_text().split()[0])


def test_the_ars_dashboard_shows_the_slots_the_cpts_publishes(login, console_stack, territory):
    page = login("ars")
    before = slots_offered(page)
    assert before >= 6, "the seeded slots pass the small-cell threshold"

    # One of the CPTS's GPs publishes six more slots, later the same day as the seeded ones.
    gp = territory.gps[1]["idnps"]
    start = datetime.fromisoformat(territory.slots[gp][-1]["end"]).astimezone(UTC) + timedelta(hours=3)
    console_stack.publish(gp, start, 6)
    ars = console_stack.headers("ars", departements=[DEPARTEMENT])

    def yearly_count() -> int | None:
        answer = httpx.get(f"{console_stack.url('indicators')}/indicators/cpts/{CPTS_ID}", headers=ars,
                           params={"period": "year"}).json()
        return next(i["value"] for i in answer["indicators"] if i["indicator_id"] == SLOTS)

    wait_for(yearly_count, lambda value: value == before + 6, timeout=30, interval=0.5)

    page.reload()
    assert slots_offered(page) == before + 6


def report_offered(console_stack) -> bool:
    paths = httpx.get(f"{console_stack.url('indicators')}/openapi.json").json()["paths"]
    return "get" in paths.get(REPORT_PATH, {})


@pytest.mark.parametrize("user", ["coordinatrice", "ars"])
def test_the_annual_report_opens_from_the_dashboard_for_a_cpts_and_a_year(login, console_stack, territory,
                                                                         user):
    if not report_offered(console_stack):
        pytest.skip(f"the indicators service does not offer {REPORT_PATH} yet")
    page = login(user)
    page.locator("#nav").get_by_role("link", name="Tableau de bord").click()
    year = str(datetime.now(ZoneInfo("Europe/Paris")).year)
    page.get_by_label("CPTS", exact=True).select_option(CPTS_ID)
    page.get_by_label("Année du rapport").select_option(year)
    page.get_by_role("button", name="Rapport annuel ACI").click()

    report = page.locator(".report-sheet")
    expect(report.get_by_role("heading", level=1)).to_have_text(f"Rapport annuel ACI {year}")
    expect(report.locator(".subtitle")).to_contain_text("CPTS de test")
    expect(page).to_have_title(re.compile(rf"Rapport annuel ACI {year} – CPTS de test"))
    # The report's own style sheet applies inside the console (its titles in the report's blue).
    color = report.get_by_role("heading", level=1).evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(0, 0, 145)"
    expect(page.get_by_role("button", name="Imprimer ou enregistrer en PDF")).to_be_visible()
    # Printing shows the report alone: the console's header is hidden.
    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(report.get_by_role("heading", level=1)).to_be_visible()
