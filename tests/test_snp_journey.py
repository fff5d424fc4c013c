"""The SAS journey across processes: an RPPS import and an SAS participation in the registry make an effecteur in
snp-dispatch; the effecteur publishes slots; a regulator takes a request, gets ranked cards, holds and books; the
booking goes out on Kafka."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from cpts_platform.testing import wait_for

pytestmark = pytest.mark.system


def _read_types(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    async def read() -> list[tuple[str, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=2000)
            return [(dict(m.headers)["ce_type"].decode(), m.value) for msgs in batches.values() for m in msgs]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_a_regulator_finds_holds_and_books_a_slot_published_by_an_effecteur(stack, tmp_path, topic_prefix):
    stack.start("registry")
    stack.start("snp-dispatch")
    stack.wait_ready()
    extract = tmp_path / "extract.txt"
    cli = [sys.executable, "-m", "cpts_cli.main", "registry"]
    subprocess.run([*cli, "generate-demo", str(extract), "--rows", "60", "--departement", "69", "--seed", "5"],
                   check=True, env=stack.env, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "import-rpps", str(extract), "--departement", "69", "--show", "0"], check=True,
                   env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = {"Authorization": f"Bearer {stack.token('admin')}"}
    gps = httpx.get(f"{stack.url('registry')}/professionals", headers=admin,
                    params={"profession": "10", "specialty": "SM54", "limit": 5}).json()["items"]
    assert gps, "the generated extract holds general practitioners"
    gp = gps[0]
    participation = httpx.put(f"{stack.url('registry')}/professionals/{gp['idnps']}/sas-participation",
                              headers=admin, json={"mode": "own_practice", "hours_per_week": 4,
                                                   "start_date": "2026-01-05"})
    assert participation.status_code in (200, 201), participation.text

    dispatch = stack.url("snp-dispatch")
    regulator = {"Authorization": f"Bearer {stack.token('regulator', departements=['69'])}"}
    effecteur = wait_for(lambda: httpx.get(f"{dispatch}/effecteurs/{gp['idnps']}", headers=regulator),
                         lambda r: r.status_code == 200 and r.json()["sas_participant"] and r.json()["sites"])
    site = effecteur.json()["sites"][0]
    doctor = {"Authorization": f"Bearer {stack.token('professional', idnps=gp['idnps'])}"}
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    published = httpx.post(f"{dispatch}/slots", headers=doctor, json={
        "idnps": gp["idnps"], "site_id": site["site_id"],
        "slots": [{"start": (start + timedelta(minutes=15 * i)).isoformat(),
                   "end": (start + timedelta(minutes=15 * (i + 1))).isoformat()} for i in range(2)]})
    assert published.status_code == 201, published.text

    request = httpx.post(f"{dispatch}/care-requests", headers=regulator, json={
        "origin": "sas", "patient": {"family_name": "Girard", "given_name": "Léon", "birth_date": "1941-05-17",
                                     "sex": "M"},
        "location": {"commune_insee": site["commune_insee"]}, "reason_category": "fever", "mt_none": True,
        "consent_mt_referral": True})
    assert request.status_code == 201, request.text
    request_id = request.json()["request_id"]
    cards = httpx.get(f"{dispatch}/care-requests/{request_id}/candidates", headers=regulator).json()["cards"]
    card = next(c for c in cards if c["idnps"] == gp["idnps"])
    assert card["group"] == "participant_with_slots" and card["free_slot_count"] == 2
    slot_id = next(s for day in card["slots"].values() for s in day)["slot_id"]
    hold = httpx.post(f"{dispatch}/slots/{slot_id}/hold", headers=regulator, json={"request_id": request_id})
    assert hold.status_code == 201, hold.text
    booked = httpx.post(f"{dispatch}/appointments", headers=regulator, json={
        "slot_id": slot_id, "request_id": request_id, "hold_id": hold.json()["hold_id"]})
    assert booked.status_code == 201, booked.text

    def on_kafka():
        return _read_types(stack.bootstrap, f"{topic_prefix}snp-dispatch")

    events = wait_for(on_kafka, lambda found: any(t == "fr.cpts.snp.appointment.booked.v1" for t, _ in found))
    types = [t for t, _ in events]
    assert types.count("fr.cpts.snp.slot.published.v1") == 2
    assert types.index("fr.cpts.snp.slot.held.v1") < types.index("fr.cpts.snp.appointment.booked.v1")
    # Indicator-bound events carry no identity of the patient.
    for event_type, value in events:
        if event_type != "fr.cpts.snp.patient_without_mt.seen.v1":
            assert b"Girard" not in value and b"1941-05-17" not in value
