"""The main journeys of the web console, in headless Chromium against the whole stack: SAS regulation with
live slot lists, the CPTS's guichet médecin traitant, a matching round, a GP accepting the patient, and the
ARS's dashboard without any patient."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import pick_commune, take_request

pytestmark = [pytest.mark.system, pytest.mark.e2e]

CPTS_ID = "690049999"
PATIENT = {"first_names": "Marcel", "birth_name": "Dupuis", "shown": "Marcel DUPUIS"}


@pytest.fixture(scope="module")
def waiting_patient(console_stack, territory) -> str:
    """A patient without an MT on the CPTS's list, in the demo doctor's commune (enrolled through the API)."""
    answer = httpx.post(f"{console_stack.url('patient-matching')}/cpts/{CPTS_ID}/patients",
                        headers=console_stack.headers("coordinator", cpts_ids=[CPTS_ID]), json={
                            "commune_insee": territory.demo_doctor["commune_insee"], "consent": True,
                            "identity": {"birth_name": PATIENT["birth_name"],
                                         "first_names": PATIENT["first_names"], "birth_date": "1940-02-11",
                                         "sex": "M", "phone": "0601020304"},
                            "priority": {"ald": True}})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["patient"]["patient_id"]


def test_a_regulator_books_a_slot_and_another_regulator_sees_it_disappear(login, territory):
    doctor = territory.demo_doctor
    slot_id = territory.slots[doctor["idnps"]][0]["slot_id"]
    slot = f'button.slot[data-slot-id="{slot_id}"]'
    first, second = login("regulatrice"), login("osnp")
    for page, family_name in ((first, "Girard"), (second, "Petit")):
        expect(page.get_by_role("heading", name="Régulation SAS", level=1)).to_be_visible()
        take_request(page, family_name=family_name, commune=territory.commune_name)
        expect(page.locator(slot)).to_be_visible()

    first.locator(slot).click()
    expect(first.get_by_role("heading", name="Créneau bloqué pour ce patient")).to_be_visible()
    expect(first.get_by_role("timer")).to_contain_text("Bloqué pour vous encore")
    first.get_by_role("button", name="Confirmer le rendez-vous").click()
    confirmation = first.locator(".confirmation")
    expect(confirmation.get_by_role("heading", name="Rendez-vous confirmé")).to_be_visible()
    expect(confirmation).to_contain_text(doctor["family_name"].upper())

    # The other regulator's list refreshes by itself: the booked slot goes, the doctor's other slots stay.
    expect(second.locator(slot)).to_have_count(0, timeout=15_000)
    expect(second.locator(f'li.card[data-idnps="{doctor["idnps"]}"] button.slot')).not_to_have_count(0)


def test_a_secretary_enrols_a_caller_without_a_medecin_traitant(login, territory):
    page = login("secretaire")
    page.get_by_role("link", name="Guichet médecin traitant").click()
    page.get_by_role("textbox", name="Nom de naissance").fill("Bernard")
    page.get_by_role("textbox", name="Prénom(s)").fill("Lucie")
    page.get_by_role("textbox", name="Date de naissance").fill("1948-04-09")
    page.get_by_role("combobox", name="Sexe").select_option("F")
    pick_commune(page, "Commune de résidence", "enrol-commune-list", territory.commune_name)
    page.get_by_label("Affection de longue durée (ALD)").check()
    page.get_by_role("button", name="Inscrire le patient").click()
    # No enrolment without the patient's consent.
    expect(page.get_by_role("alert")).to_contain_text("Consentement")
    page.get_by_label("Le patient consent").check()
    page.get_by_role("button", name="Inscrire le patient").click()
    result = page.locator(".confirmation")
    expect(result.get_by_role("heading", name="Patient inscrit sur la liste de la CPTS.")).to_be_visible()
    expect(result).to_contain_text("Lucie BERNARD")
    expect(result).to_contain_text("ALD")


def test_a_coordinator_runs_a_matching_round_and_follows_its_proposals(login, territory, waiting_patient):
    page = login("coordinatrice")
    page.get_by_role("link", name="Patients sans médecin traitant").click()
    row = page.locator(f'tr[data-patient-id="{waiting_patient}"]')
    expect(row).to_contain_text(PATIENT["shown"])
    expect(row).to_contain_text("ALD")
    page.get_by_role("button", name="Lancer un tour d'appariement").click()
    expect(page.get_by_role("heading", name=re.compile("^Tour d'appariement du"))).to_be_visible()
    page.get_by_role("tab", name="Propositions aux médecins").click()
    proposal = page.locator("tr[data-proposal-id]").filter(has_text=PATIENT["shown"])
    expect(proposal).to_contain_text("En attente de réponse")
    expect(proposal).to_contain_text(territory.demo_doctor["family_name"].upper())


def test_the_gp_accepts_the_patient_proposed_to_them(login, console_stack, territory, waiting_patient):
    coordinator = console_stack.headers("coordinator", cpts_ids=[CPTS_ID])
    matching = console_stack.url("patient-matching")
    pending = httpx.get(f"{matching}/cpts/{CPTS_ID}/proposals", headers=coordinator,
                        params={"status": "pending"}).json()["items"]
    if not any(p["patient_id"] == waiting_patient for p in pending):  # run alone: no round yet
        httpx.post(f"{matching}/cpts/{CPTS_ID}/rounds", headers=coordinator).raise_for_status()

    page = login("medecin")
    page.get_by_role("link", name="Nouveaux patients proposés").click()
    proposal = page.locator("li.proposal").filter(has_text=PATIENT["shown"])
    expect(proposal).to_contain_text("0601020304")
    proposal.get_by_role("button", name="Accepter comme patient").click()
    expect(page.get_by_role("status").filter(has_text="médecin traitant")).to_contain_text(PATIENT["shown"])
    expect(page.locator("li.proposal.accepted").filter(has_text=PATIENT["shown"])).to_be_visible()


def test_the_ars_sees_the_dashboard_but_no_patient(login, console_stack, territory, waiting_patient):
    page = login("ars")
    expect(page.get_by_role("heading", name="Tableau de bord des indicateurs")).to_be_visible()
    expect(page.locator("#nav").get_by_role("link")).to_have_count(1)
    page.get_by_role("tab", name="Territoire et membres").click()
    members = page.locator('article[data-indicator="registry.members"]')
    expect(members).to_contain_text("< 6 (masqué)")  # three members: a small cell
    expect(members.locator("svg.chart")).to_be_visible()
    page.get_by_role("tab", name=re.compile("Accès à un médecin traitant")).click()
    expect(page.locator('article[data-indicator="mt.patients.enrolled"]')).to_be_visible()
    assert PATIENT["birth_name"].upper() not in page.locator("main").inner_text().upper()
    with page.expect_download() as export:
        page.get_by_role("button", name="Exporter en CSV").click()
    assert export.value.suggested_filename.endswith(".csv")
    assert "registry.members" in export.value.path().read_text(encoding="utf-8")

    page.goto(console_stack.url("console") + "/#/patients")
    expect(page.get_by_role("heading", name="Accès refusé")).to_be_visible()
    status = page.evaluate("""async (cpts) => {
        const { token } = JSON.parse(sessionStorage.getItem('cpts.session'));
        const headers = { Authorization: `Bearer ${token}` };
        const answer = await fetch(`/api/matching/cpts/${cpts}/patients`, { headers });
        return answer.status;
    }""", CPTS_ID)
    assert status == 403
