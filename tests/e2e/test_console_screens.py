"""Every screen of every role of the web console, saved as PNG test artifacts at a desktop width (1280 px) and,
for the main screens, a tablet width (820 px): `CPTS_E2E_ARTIFACTS/<width>/<role>-<screen>.png` (default
`var/e2e-artifacts/`). The last test checks that the whole set was written by this run."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CPTS_ID, TABLET_WIDTH, take_request

pytestmark = [pytest.mark.system, pytest.mark.e2e]

DESKTOP_WIDTH = 1280
WIDTHS = [DESKTOP_WIDTH, TABLET_WIDTH]
# Screens shot at both widths; the others at the desktop width only.
MAIN_SCREENS = {
    "anonyme-connexion", "regulateur-saisie", "regulateur-resultats", "regulateur-confirmation",
    "secretaire-guichet", "medecin-agenda", "medecin-propositions", "coordinateur-patients",
    "coordinateur-annuaire-carte", "coordinateur-tableau-de-bord", "ars-tableau-de-bord", "ars-rapport-annuel",
}
SCREENS = [
    "anonyme-connexion",
    "regulateur-saisie", "regulateur-resultats", "regulateur-orientation", "regulateur-blocage",
    "regulateur-confirmation",
    "secretaire-rendez-vous", "secretaire-guichet",
    "medecin-agenda", "medecin-publication", "medecin-participation", "medecin-propositions",
    "coordinateur-patients", "coordinateur-tour", "coordinateur-propositions",
    "coordinateur-annuaire-liste", "coordinateur-annuaire-carte",
    "coordinateur-tableau-de-bord", "coordinateur-rapport-annuel",
    "ars-tableau-de-bord", "ars-rapport-annuel",
]
REPORT_SCREENS = {"coordinateur-rapport-annuel", "ars-rapport-annuel"}
REPORT_PATH = "/indicators/cpts/{cpts_id}/report/{year}"


def settled(page: Page) -> None:
    """Nothing of the screen is still loading."""
    expect(page.locator("main .loading")).to_have_count(0)


class Shooter:
    """Saves the screens of one role at one width, the desktop-only ones skipped at the tablet width."""

    def __init__(self, screenshots, page: Page, role: str, width: int) -> None:
        self.screenshots, self.page, self.role, self.width = screenshots, page, role, width

    def __call__(self, screen: str, *, element=None) -> None:
        name = f"{self.role}-{screen}"
        assert name in SCREENS, name
        if self.width == DESKTOP_WIDTH or name in MAIN_SCREENS:
            settled(self.page)
            self.screenshots(self.page, name, element=element)


@pytest.fixture(scope="module")
def enrolled_patient(console_stack, territory) -> str:
    """A patient waiting for an MT in the demo doctor's commune, so that rounds and proposals have content."""
    answer = httpx.post(f"{console_stack.url('patient-matching')}/cpts/{CPTS_ID}/patients",
                        headers=console_stack.headers("coordinator", cpts_ids=[CPTS_ID]), json={
                            "commune_insee": territory.demo_doctor["commune_insee"], "consent": True,
                            "identity": {"birth_name": "Lefèvre", "first_names": "Odette",
                                         "birth_date": "1939-07-02", "sex": "F", "phone": "0605040302"},
                            "priority": {"ald": True}})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["patient"]["patient_id"]


@pytest.mark.parametrize("width", WIDTHS)
def test_login_chooser(browser, console_stack, territory, screenshots, width):
    context = browser.new_context(locale="fr-FR", timezone_id="Europe/Paris",
                                  viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(console_stack.url("console") + "/")
        expect(page.get_by_role("heading", name="Connexion (démonstration)")).to_be_visible()
        expect(page.locator("button[data-user]")).to_have_count(6)
        Shooter(screenshots, page, "anonyme", width)("connexion")
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_regulator_screens(login, territory, screenshots, width):
    page = login("regulatrice", width=width)
    shoot = Shooter(screenshots, page, "regulateur", width)
    expect(page.get_by_role("heading", name="Régulation SAS", level=1)).to_be_visible()
    shoot("saisie")
    take_request(page, family_name="Moreau", commune=territory.commune_name)
    # The second GP's earliest free slot (the first GP's are the regulation journey's).
    slot = page.locator(f'li.card[data-idnps="{territory.gps[1]["idnps"]}"] button.slot').first
    expect(slot).to_be_visible()
    shoot("resultats")

    page.get_by_role("button", name="Aucun créneau : orienter le patient").click()
    expect(page.get_by_role("heading", name="Aucun créneau ne convient")).to_be_visible()
    shoot("orientation")
    page.get_by_role("button", name="Annuler").click()

    slot.click()
    expect(page.get_by_role("timer")).to_contain_text("Bloqué pour vous encore")
    shoot("blocage")
    page.get_by_role("button", name="Confirmer le rendez-vous").click()
    expect(page.locator(".confirmation").get_by_role("heading", name="Rendez-vous confirmé")).to_be_visible()
    shoot("confirmation")


@pytest.mark.parametrize("width", WIDTHS)
def test_secretary_screens(login, screenshots, width):
    page = login("secretaire", width=width)
    shoot = Shooter(screenshots, page, "secretaire", width)
    expect(page.get_by_role("heading", name="Prise de rendez-vous", level=1)).to_be_visible()
    shoot("rendez-vous")
    page.locator("#nav").get_by_role("link", name="Guichet médecin traitant").click()
    expect(page.get_by_role("heading", name="Guichet médecin traitant", level=1)).to_be_visible()
    shoot("guichet")


@pytest.mark.parametrize("width", WIDTHS)
def test_doctor_screens(login, screenshots, width):
    page = login("medecin", width=width)
    shoot = Shooter(screenshots, page, "medecin", width)
    expect(page.get_by_role("heading", name="Mon agenda de soins non programmés")).to_be_visible()
    shoot("agenda")
    shoot("publication", element=page.locator('form[aria-labelledby="recurring-title"]'))
    page.locator("#nav").get_by_role("link", name="Ma participation").click()
    expect(page.get_by_role("heading", name="Participation au SAS")).to_be_visible()
    shoot("participation")
    page.locator("#nav").get_by_role("link", name="Nouveaux patients proposés").click()
    expect(page.get_by_role("heading", name="En attente de votre réponse")).to_be_visible()
    shoot("propositions")


@pytest.mark.parametrize("width", WIDTHS)
def test_coordinator_screens(login, console_stack, screenshots, enrolled_patient, width):
    page = login("coordinatrice", width=width)
    shoot = Shooter(screenshots, page, "coordinateur", width)
    nav = page.locator("#nav")
    nav.get_by_role("link", name="Patients sans médecin traitant").click()
    expect(page.locator(f'tr[data-patient-id="{enrolled_patient}"]')).to_be_visible()
    shoot("patients")
    page.get_by_role("button", name="Lancer un tour d'appariement").click()
    expect(page.get_by_role("heading", name=re.compile("^Tour d'appariement du"))).to_be_visible()
    shoot("tour")
    page.get_by_role("tab", name="Propositions aux médecins").click()
    expect(page.locator("tr[data-proposal-id]").first).to_be_visible()
    shoot("propositions")

    nav.get_by_role("link", name="Annuaire du territoire").click()
    expect(page.locator("svg.map")).to_be_visible()
    shoot("annuaire-liste", element=page.locator('section[aria-labelledby="dir-list-title"]'))
    shoot("annuaire-carte", element=page.locator('section[aria-labelledby="dir-map-title"]'))

    nav.get_by_role("link", name="Tableau de bord").click()
    expect(page.locator("article[data-indicator] svg.chart").first).to_be_visible()
    shoot("tableau-de-bord")
    open_report(page, console_stack, shoot)


@pytest.mark.parametrize("width", WIDTHS)
def test_ars_screens(login, console_stack, screenshots, width):
    page = login("ars", width=width)
    shoot = Shooter(screenshots, page, "ars", width)
    expect(page.get_by_role("heading", name="Tableau de bord des indicateurs")).to_be_visible()
    expect(page.locator("article[data-indicator] svg.chart").first).to_be_visible()
    shoot("tableau-de-bord")
    open_report(page, console_stack, shoot)


def report_offered(console_stack) -> bool:
    paths = httpx.get(f"{console_stack.url('indicators')}/openapi.json").json()["paths"]
    return "get" in paths.get(REPORT_PATH, {})


def open_report(page: Page, console_stack, shoot: Shooter) -> None:
    if not report_offered(console_stack):
        return
    page.get_by_role("button", name="Rapport annuel ACI").click()
    expect(page.locator(".report-sheet").get_by_role("heading", level=1)).to_contain_text("Rapport annuel ACI")
    shoot("rapport-annuel")


def test_every_screen_of_every_role_is_saved(request, console_stack, screenshots):
    """Runs last: the screenshots of this run, at both widths for the main screens."""
    tests = {name for name in dir(request.module) if name.startswith("test_")}
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    if selected != tests:
        pytest.skip("only some of the screens were selected")
    expected = {(name, DESKTOP_WIDTH) for name in SCREENS} | {(name, TABLET_WIDTH) for name in MAIN_SCREENS}
    if not report_offered(console_stack):
        expected = {(name, width) for name, width in expected if name not in REPORT_SCREENS}
    missing = sorted(f"{width}/{name}.png" for name, width in expected if not screenshots.taken(name, width))
    assert not missing, f"missing in {screenshots.folder}: {missing}"
