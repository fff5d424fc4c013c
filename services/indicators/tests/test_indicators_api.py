"""The indicators service on the real broker: events published (twice, late) become masked values in the API,
the CSV export and the snapshots of the `indicators` topic; each caller sees only their scope."""

from __future__ import annotations

import csv
import io

import openpyxl

from aiokafka import AIOKafkaConsumer

from cpts_events import decode, encode
from cpts_events.registry import CptsRegistered
from cpts_events.snp_dispatch import CareRequestReceived
from cpts_indicators.app import service
from cpts_indicators.exports import COLUMNS, MASKED_TEXT, XLSX_MEDIA_TYPE
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for


def bearer(issuer: LocalIssuer, role: str, **scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=f'{role}-user', roles=[role], **scope)}"}


async def snapshots_on_topic(kafka_broker: str, topic: str, wanted) -> list:
    """The snapshots read from the topic until `wanted(snapshots)` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: list = []
    try:
        async def read():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(decode(r.headers, r.key, r.value) for r in records)
            return wanted(found)

        await eventually(read, timeout=20)
    finally:
        await consumer.stop()
    return found


async def test_published_events_count_once_in_their_period_and_come_out_masked_everywhere(
        database_url, kafka_broker, topic_prefix, tmp_path, publish, kit):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    scenario = kit.march()
    records = [encode(event) for event in scenario.events]
    late = encode(kit.at(CareRequestReceived(
        request_id="late", origin="sas", cpts_id=kit.CPTS, commune_insee="69259", departement="69",
        urgency="48h", reason_category="x", has_mt=False, age_band="70+",
        received_at=kit.paris("2026-02-10T10:00")), kit.paris("2026-02-10T10:00")))
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[kit.CPTS])
    async with running_service(service, settings) as client:
        await publish(*records)
        await publish(*records, late)  # everything delivered twice, and a February request arriving last

        async def march_done():
            response = await client.get(f"/indicators/cpts/{kit.CPTS}",
                                        params={"period": "month", "at": "2026-03"}, headers=coordinator)
            body = response.json()
            values = {i["indicator_id"]: i for i in body.get("indicators", [])}
            february = (await client.get(f"/indicators/cpts/{kit.CPTS}/series/snp.requests.received"
                                         "?period=month&from=2026-02&to=2026-02", headers=coordinator)).json()
            done = (values.get("snp.appointments.with_outcome", {}).get("value") == 12
                    and values["registry.members"]["value"] == 9 and february["points"][0]["masked"])
            return done and values

        values = await eventually(march_done, timeout=30)
        weekly = (await client.get(f"/indicators/cpts/{kit.CPTS}/series/snp.requests.received",
                                   params={"period": "week", "from": "2026-W10", "to": "2026-W12"},
                                   headers=coordinator)).json()
        export = await client.get(f"/indicators/cpts/{kit.CPTS}/export.csv",
                                  params={"period": "month", "from": "2026-02", "to": "2026-03"},
                                  headers=coordinator)
        xlsx = await client.get(f"/indicators/cpts/{kit.CPTS}/export.xlsx",
                                params={"period": "month", "from": "2026-02", "to": "2026-03"},
                                headers=coordinator)

        def outcomes(snapshot) -> float | None:
            return next(i.value for i in snapshot.payload.indicators
                        if i.indicator_id == "snp.appointments.with_outcome")

        snapshots = await snapshots_on_topic(kafka_broker, topic_prefix + "indicators", lambda found: any(
            s.payload.period_key == "2026-03" and s.payload.cpts_id == kit.CPTS and outcomes(s) == 12
            for s in found))

    for indicator_id, expected in scenario.expected.items():
        cell = values[indicator_id]
        assert cell["value"] == (None if cell["masked"] else expected), indicator_id
    assert values["snp.requests.received"]["value"] == 18  # not 36: each event counted once
    noshow = values["snp.appointments.noshow"]
    assert (noshow["value"], noshow["masked"], noshow["last_event_time"]) == (None, True, None)
    assert values["snp.appointments.noshow_rate"]["masked"]
    cells = values["snp.requests.received"]["breakdowns"][0]["cells"]
    origins = {c["category"]: (c["value"], c["masked"]) for c in cells}
    assert origins == {"sas": (9, False), "cpts_phone": (None, True), "member_referral": (None, True)}
    assert values["registry.members"]["version"] == 1 and values["registry.members"]["last_event_time"]

    assert [(p["period"]["key"], p["value"], p["masked"]) for p in weekly["points"]] == [
        ("2026-W10", 7, False), ("2026-W11", 7, False), ("2026-W12", None, True)]

    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    cell = {(r["cle_periode"], r["indicateur"], r["ventilation"], r["categorie"]): r for r in rows}
    assert cell[("2026-03", "snp.requests.received", "", "")]["valeur"] == "18"
    phone = cell[("2026-03", "snp.requests.received", "origin", "cpts_phone")]
    assert (phone["valeur"], phone["masque"], phone["dernier_evenement"]) == ("", "true", "")
    assert cell[("2026-02", "snp.requests.received", "", "")]["masque"] == "true"  # the late one, alone
    assert cell[("2026-03", "snp.appointments.noshow", "", "")]["masque"] == "true"

    assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith(XLSX_MEDIA_TYPE)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content))["Indicateurs"]
    header, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header == list(COLUMNS) and len(body) == len(rows)  # the CSV's rows, as a workbook
    xcell = {(r[2], r[5], r[9] or "", r[10] or ""): dict(zip(header, r)) for r in body}
    assert xcell[("2026-03", "snp.requests.received", "", "")]["valeur"] == 18  # a number, not text
    xphone = xcell[("2026-03", "snp.requests.received", "origin", "cpts_phone")]
    assert (xphone["valeur"], xphone["masque"]) == (MASKED_TEXT, True)

    march_snapshots = [s for s in snapshots
                       if s.payload.period_key == "2026-03" and s.payload.cpts_id == kit.CPTS]
    last = max(march_snapshots, key=lambda s: s.payload.sequence).payload
    by_id = {i.indicator_id: i for i in last.indicators}
    assert by_id["snp.requests.received"].value == 18 and by_id["snp.appointments.noshow"].masked
    assert by_id["snp.appointments.noshow"].value is None and not last.final
    phone_cells = {c.category: c for b in by_id["snp.requests.received"].breakdowns for c in b.cells}
    assert phone_cells["cpts_phone"].masked and phone_cells["cpts_phone"].value is None
    assert all(s.type == "fr.cpts.indicators.snapshot.v1" and s.key == s.payload.cpts_id for s in snapshots)
    assert len(snapshots) < len(records)  # coalesced per batch, not one per event
    assert not any("Zorglub" in s.payload.model_dump_json() for s in snapshots)


async def test_coordinators_secretaries_ars_and_admins_see_only_their_scope(
        database_url, kafka_broker, topic_prefix, tmp_path, publish, kit):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    path = f"/indicators/cpts/{kit.CPTS}?period=month&at=2026-03"
    async with running_service(service, settings) as client:
        await publish(CptsRegistered(cpts_id=kit.CPTS, name="CPTS de l'Est lyonnais", stage="aci_signed",
                                     communes=["69259"], population=62000, size_band=2, departements=["69"]))
        admin = bearer(issuer, "admin")

        async def known():
            return (await client.get(path, headers=admin)).status_code == 200

        await eventually(known)
        status = {}
        for name, headers, url in [
            ("coordinator", bearer(issuer, "coordinator", cpts_ids=[kit.CPTS]), path),
            ("secretary", bearer(issuer, "secretary", cpts_ids=[kit.CPTS]), path),
            ("ars of the département", bearer(issuer, "ars", departements=["69"]), path),
            ("admin", admin, path),
            ("coordinator of another CPTS", bearer(issuer, "coordinator", cpts_ids=[kit.OTHER_CPTS]), path),
            ("ars of another département", bearer(issuer, "ars", departements=["01"]), path),
            ("regulator", bearer(issuer, "regulator", departements=["69"]), path),
            ("professional", bearer(issuer, "professional", idnps=kit.gp(1)), path),
            ("no token", {}, path),
            ("unknown CPTS, admin", admin, "/indicators/cpts/010000001?period=month"),
            ("unknown CPTS, ars", bearer(issuer, "ars", departements=["01"]), "/indicators/cpts/010000001"),
            ("unknown CPTS, its coordinator", bearer(issuer, "coordinator", cpts_ids=["010000001"]),
             "/indicators/cpts/010000001/export.csv"),
            ("unknown indicator", admin, f"/indicators/cpts/{kit.CPTS}/series/snp.nothing"),
            ("malformed period", admin, f"/indicators/cpts/{kit.CPTS}?period=month&at=2026-13"),
            ("reversed range", admin,
             f"/indicators/cpts/{kit.CPTS}/export.csv?period=week&from=2026-W12&to=2026-W10"),
            ("catalogue for the ARS", bearer(issuer, "ars", departements=["01"]), "/indicators/catalogue"),
        ]:
            status[name] = (await client.get(url, headers=headers)).status_code
        catalogue = (await client.get("/indicators/catalogue", headers=admin)).json()
        rebuild = await client.post("/indicators/snapshots/rebuild", headers=admin)
        rebuild_by_ars = await client.post("/indicators/snapshots/rebuild", headers=bearer(issuer, "ars"))
    assert status == {
        "coordinator": 200, "secretary": 200, "ars of the département": 200, "admin": 200,
        "coordinator of another CPTS": 403, "ars of another département": 403, "regulator": 403,
        "professional": 403, "no token": 401, "unknown CPTS, admin": 404, "unknown CPTS, ars": 404,
        "unknown CPTS, its coordinator": 404, "unknown indicator": 404, "malformed period": 422,
        "reversed range": 422, "catalogue for the ARS": 200}
    assert catalogue["small_cell_threshold"] == 6 and len(catalogue["indicators"]) >= 25
    assert {i["mission"] for i in catalogue["indicators"]} == {"1a", "1b", "registry"}
    assert rebuild.status_code == 200 and rebuild.json()["sent"] == 0
    assert rebuild_by_ars.status_code == 403
