"""Demo data of the one-command run: a generated RPPS extract for real communes of the Rhône, imported
through `cpts registry import-rpps`, then one operating CPTS on those communes with its members, SAS
participants and MT capacities, all through the registry's API so that every event flows; then the SAS
participants' slots for the coming days, through snp-dispatch's API."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

DEMO_CPTS_ID = "690049999"
DEMO_CPTS_NAME = "CPTS de l'Est lyonnais"
DEMO_DEPARTEMENT = "69"
# Villeurbanne, Vénissieux, Saint-Priest, Rillieux-la-Pape, Bron, Vaulx-en-Velin, Décines-Charpieu
DEMO_COMMUNES = ["69266", "69259", "69290", "69286", "69029", "69256", "69275"]
DEMO_ROWS = 3000
PARIS = ZoneInfo("Europe/Paris")


def import_demo_extract(var_dir: Path) -> None:
    """Generate (once) the demo extract in the national format and import it (idempotent)."""
    extract = var_dir / "demo" / "PS_LibreAcces_Personne_activite_demo.txt"
    cli = [sys.executable, "-m", "cpts_cli.main", "registry"]
    if not extract.exists():
        extract.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*cli, "generate-demo", str(extract), "--rows", str(DEMO_ROWS), "--departement",
                        DEMO_DEPARTEMENT, "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "import-rpps", str(extract), "--departement", DEMO_DEPARTEMENT, "--show", "0"],
                   check=True, stderr=subprocess.DEVNULL)


def seed(registry_url: str, token: str) -> dict[str, int]:
    """Register the demo CPTS on the imported professionals; nothing is done again once it exists."""
    rng = random.Random(1)
    figures = {"members": 0, "sas_participants": 0, "mt_capacities": 0}
    with httpx.Client(base_url=registry_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        response = client.post("/cpts", json={
            "cpts_id": DEMO_CPTS_ID, "name": DEMO_CPTS_NAME, "communes": DEMO_COMMUNES, "stage": "aci_signed",
            "aci_signed_on": "2024-03-01", "missions": ["1a-medecin-traitant", "1b-soins-non-programmes",
                                                        "2-parcours", "4-crises-sanitaires"]})
        if response.status_code == 409:
            return figures
        response.raise_for_status()
        seen: set[str] = set()
        for commune in DEMO_COMMUNES:
            page = client.get("/professionals", params={"commune": commune, "limit": 500}).raise_for_status().json()
            for professional in page["items"]:
                if professional["idnps"] in seen:
                    continue  # practises in two communes of the territory
                seen.add(professional["idnps"])
                if rng.random() > 0.7:
                    continue  # not every professional of the territory joins its CPTS
                idnps = professional["idnps"]
                client.put(f"/cpts/{DEMO_CPTS_ID}/members/{idnps}",
                           json={"status": "active" if rng.random() < 0.4 else "adherent"}).raise_for_status()
                figures["members"] += 1
                if professional["profession_code"] != "10" or professional["specialty_code"] != "SM54":
                    continue
                if rng.random() < 0.6:
                    en_sus = rng.random() < 0.5
                    client.put(f"/professionals/{idnps}/sas-participation", json={
                        "mode": rng.choice(["cpts", "own_practice", "msp"]), "hours_per_week": rng.choice([2, 3, 4, 6]),
                        "accepts_en_sus": en_sus, "en_sus_weekly_cap": rng.choice([3, 5, 10]) if en_sus else None,
                        "start_date": "2025-09-01"}).raise_for_status()
                    figures["sas_participants"] += 1
                if rng.random() < 0.5:
                    publics = ["adults"] + (["children"] if rng.random() < 0.5 else []) + (
                        ["home_bound"] if rng.random() < 0.3 else [])
                    client.put(f"/professionals/{idnps}/mt-capacity", json={
                        "accepting": True, "new_patients_per_month": rng.randint(2, 10), "publics": publics,
                        "until": "2027-06-30"}).raise_for_status()
                    figures["mt_capacities"] += 1
    return figures


def _wait_for_effecteurs(client: httpx.Client, expected_at_least: int, timeout: float = 60.0) -> list[dict]:
    """snp-dispatch learns the professionals from the registry's events: wait until its read model settles."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = client.get("/effecteurs", params={"cpts_id": DEMO_CPTS_ID, "sas_participant": True,
                                                  "limit": 1000}).raise_for_status().json()
        if len(found) >= expected_at_least:
            time.sleep(1.0)
            again = client.get("/effecteurs", params={"cpts_id": DEMO_CPTS_ID, "sas_participant": True,
                                                      "limit": 1000}).raise_for_status().json()
            if len(again) == len(found):
                return again
        time.sleep(0.5)
    return found


def seed_slots(snp_url: str, token: str, *, days: int = 7, participants: int = 1) -> dict[str, int]:
    """Publish the SAS participants' unscheduled-care slots for the coming days through snp-dispatch's API,
    once its read model holds the `participants` the registry just announced (at least one).

    Each participant keeps the same weekly pattern (seeded by their id); a day already published answers 409
    and is left as it is, so running the demo again only adds the new days."""
    figures = {"effecteurs": 0, "slots": 0}
    today = datetime.now(PARIS).date()
    with httpx.Client(base_url=snp_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        effecteurs = _wait_for_effecteurs(client, expected_at_least=max(participants, 1))
        figures["effecteurs"] = len(effecteurs)
        for effecteur in effecteurs:
            if not effecteur["sites"]:
                continue
            rng = random.Random(effecteur["idnps"])
            site_id = effecteur["sites"][0]["site_id"]
            weekdays = set(rng.sample([1, 2, 3, 4, 5], 3)) | ({6} if rng.random() < 0.2 else set())
            block = rng.choice([("08:30", "10:00"), ("11:00", "12:30"), ("14:00", "16:00"), ("17:00", "19:00")])
            visibility = rng.choice([["SNP", "PRO"], ["SNP", "PRO", "CPTS"], ["SNP", "PRO", "PUBLIC"], ["CPTS"]])
            service_type = "VR" if rng.random() < 0.1 else "AMB"
            for offset in range(days):
                day = today + timedelta(days=offset)
                if day.isoweekday() not in weekdays:
                    continue
                start, end = ("09:00", "12:00") if day.isoweekday() == 6 else block
                response = client.post("/slots/recurring", json={
                    "idnps": effecteur["idnps"], "site_id": site_id, "weekdays": [day.isoweekday()],
                    "start_time": start, "end_time": end, "slot_minutes": 15, "first_day": day.isoformat(),
                    "weeks": 1, "service_type": service_type, "visibility": visibility})
                if response.status_code == 201:
                    figures["slots"] += response.json()["total"]
                elif response.status_code not in (409, 422):  # 409: already published; 422: all in the past
                    response.raise_for_status()
    return figures


FAMILY_NAMES = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
                "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL",
                "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT",
                "MULLER", "LEFEVRE", "FAURE", "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER", "GARNIER",
                "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT"]
FIRST_NAMES = {"F": ["Marie", "Jeanne", "Camille", "Louise", "Chloé", "Léa", "Nathalie", "Sylvie", "Fatima",
                     "Yasmine", "Monique", "Isabelle", "Inès", "Emma"],
               "M": ["Jean", "Pierre", "Louis", "Lucas", "Hugo", "Mohamed", "Karim", "Michel", "Alain",
                     "Thomas", "Nicolas", "Paul", "Gabriel", "Bernard"]}


def seed_patients(matching_url: str, token: str, *, count: int = 400) -> dict[str, int]:
    """Enrol the demo CPTS's patients without a médecin traitant (the guichet's list), once: a deterministic,
    plausible mix of ages, ALD, C2S and other priority facts, living in the territory's communes."""
    figures = {"patients": 0}
    rng = random.Random(7)
    today = datetime.now(PARIS).date()
    with httpx.Client(base_url=matching_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        existing = client.get(f"/cpts/{DEMO_CPTS_ID}/patients", params={"limit": 1})
        if existing.status_code == 200 and existing.json().get("total", 0) > 0:
            return figures
        for _ in range(count):
            sex = rng.choice("FM")
            age = rng.choice([rng.randint(2, 15), rng.randint(18, 69), rng.randint(18, 69), rng.randint(70, 92)])
            birth = today.replace(year=today.year - age) - timedelta(days=rng.randint(1, 360))
            ald = rng.random() < (0.45 if age >= 70 else 0.15)
            response = client.post(f"/cpts/{DEMO_CPTS_ID}/patients", json={
                "identity": {"birth_name": rng.choice(FAMILY_NAMES), "first_names": rng.choice(FIRST_NAMES[sex]),
                             "birth_date": birth.isoformat(), "sex": sex,
                             "phone": f"06{rng.randint(10_000_000, 99_999_999)}"},
                "commune_insee": rng.choice(DEMO_COMMUNES),
                "mobility": {"max_distance_km": rng.choice([5, 10, 15, 20]),
                             "needs_home_visit": age >= 80 and rng.random() < 0.3},
                "priority": {"ald": ald, "c2s": rng.random() < 0.12, "disability": rng.random() < 0.05,
                             "pregnancy": sex == "F" and 18 <= age <= 42 and rng.random() < 0.08},
                "consent": True})
            if response.status_code in (200, 201):
                figures["patients"] += response.status_code == 201
            elif response.status_code != 409:
                response.raise_for_status()
    return figures
