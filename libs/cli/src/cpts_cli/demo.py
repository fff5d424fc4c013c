"""Demo data of the one-command run: a generated RPPS extract for real communes of the Rhône, imported
through `cpts registry import-rpps`, then one operating CPTS on those communes with its members, SAS
participants and MT capacities, all through the registry's API so that every event flows."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import httpx

DEMO_CPTS_ID = "690049999"
DEMO_CPTS_NAME = "CPTS de l'Est lyonnais"
DEMO_DEPARTEMENT = "69"
# Villeurbanne, Vénissieux, Saint-Priest, Rillieux-la-Pape, Bron, Vaulx-en-Velin, Décines-Charpieu
DEMO_COMMUNES = ["69266", "69259", "69290", "69286", "69029", "69256", "69275"]
DEMO_ROWS = 3000


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
