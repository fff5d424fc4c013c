"""Demo data of the one-command run, seeded through the registry's API so that every event flows."""

from __future__ import annotations

import httpx

DEMO_CPTS_ID = "690049999"
DEMO_CPTS_NAME = "CPTS de l'Est lyonnais"
DEMO_DEPARTEMENT = "69"
# Vénissieux, Saint-Priest, Rillieux-la-Pape, Bron, Vaulx-en-Velin, Décines-Charpieu
DEMO_COMMUNES = ["69259", "69290", "69286", "69029", "69256", "69275"]

# (idnps, family name, given name, profession code, specialty, commune INSEE)
DEMO_PROFESSIONALS = [
    ("810100000011", "Morel", "Camille", "10", "SM54", "69259"),
    ("810100000029", "Girard", "Antoine", "10", "SM54", "69259"),
    ("810100000037", "Bonnet", "Élise", "10", "SM54", "69290"),
    ("810100000045", "Dupont", "Hugo", "10", "SM54", "69286"),
    ("810100000052", "Lambert", "Inès", "10", "SM54", "69029"),
    ("810100000060", "Fontaine", "Lucas", "10", "SM54", "69029"),
    ("810100000078", "Rousseau", "Manon", "10", "SM54", "69256"),
    ("810100000086", "Vincent", "Nathan", "10", "SM54", "69275"),
    ("810100000094", "Muller", "Sarah", "60", None, "69259"),
    ("810100000102", "Lefèvre", "Julien", "60", None, "69290"),
    ("810100000110", "Faure", "Chloé", "21", None, "69029"),
    ("810100000128", "André", "Louis", "40", None, "69286"),
]


def seed(registry_url: str, token: str) -> tuple[int, int]:
    """Register the demo professionals; return (created, already there). Safe to run again."""
    created = existing = 0
    with httpx.Client(base_url=registry_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        response = client.post("/cpts", json={
            "cpts_id": DEMO_CPTS_ID, "name": DEMO_CPTS_NAME, "communes": DEMO_COMMUNES, "stage": "aci_signed",
            "aci_signed_on": "2024-03-01", "missions": ["1a-medecin-traitant", "1b-soins-non-programmes"]})
        if response.status_code not in (201, 409):
            response.raise_for_status()
        for idnps, family, given, profession, specialty, commune in DEMO_PROFESSIONALS:
            response = client.post("/professionals", json={
                "idnps": idnps, "family_name": family, "given_name": given, "profession_code": profession,
                "specialty_code": specialty, "commune_insee": commune, "cpts_ids": [DEMO_CPTS_ID],
            })
            if response.status_code == 201:
                created += 1
            elif response.status_code == 409:
                existing += 1
            else:
                response.raise_for_status()
    return created, existing
