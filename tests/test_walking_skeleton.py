"""A professional registered in the registry reaches snp-dispatch, patient-matching and the indicators."""

from __future__ import annotations

import time

import httpx
import pytest

from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system

CPTS = "690049999"


def test_a_registered_professional_flows_to_every_service(stack):
    for name in ("registry", "snp-dispatch", "patient-matching", "indicators"):
        stack.start(name)
    stack.wait_ready()
    admin = {"Authorization": f"Bearer {stack.token('admin')}"}
    coordinator = {"Authorization": f"Bearer {stack.token('coordinator', cpts_ids=[CPTS])}"}
    regulator = {"Authorization": f"Bearer {stack.token('regulator', departements=['69'])}"}
    professional = {"idnps": "810100000011", "family_name": "Morel", "given_name": "Camille",
                    "profession_code": "10", "specialty_code": "SM54", "commune_insee": "69259",
                    "cpts_ids": [CPTS]}

    cpts = httpx.post(f"{stack.url('registry')}/cpts", headers=admin,
                      json={"cpts_id": CPTS, "name": "CPTS de l'Est lyonnais", "communes": ["69259", "69290"]})
    assert cpts.status_code == 201, cpts.text
    started = time.monotonic()
    response = httpx.post(f"{stack.url('registry')}/professionals", json=professional, headers=coordinator)
    assert response.status_code == 201, response.text

    effecteur = wait_for(lambda: httpx.get(f"{stack.url('snp-dispatch')}/effecteurs/810100000011",
                                           headers=regulator), lambda r: r.status_code == 200)
    assert effecteur.json()["family_name"] == "Morel"
    gp = wait_for(lambda: httpx.get(f"{stack.url('patient-matching')}/gps/810100000011", headers=coordinator),
                  lambda r: r.status_code == 200)
    assert gp.json()["cpts_ids"] == [CPTS]
    count = wait_for(lambda: httpx.get(f"{stack.url('indicators')}/indicators/cpts/{CPTS}/professionals",
                                       headers=coordinator), lambda r: r.json().get("professionals") == 1)
    assert count.json()["last_event_time"] is not None
    assert time.monotonic() - started < 10

    metrics = httpx.get(f"{stack.url('registry')}/metrics").text
    assert 'cpts_events_published_total{service="registry"' in metrics
    consumed = httpx.get(f"{stack.url('indicators')}/metrics").text
    assert 'cpts_events_consumed_total{service="indicators"' in consumed
    duplicate = httpx.post(f"{stack.url('registry')}/professionals", json=professional, headers=admin)
    assert duplicate.status_code == 409
