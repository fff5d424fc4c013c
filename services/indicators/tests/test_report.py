"""The annual ACI report: yearly targets (validation, who may set and read them), the funding simulation
(figures computed by hand from the amounts of DOMAIN.md), the printable HTML page and its JSON variant, with
small cells masked everywhere."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest

from cpts_events.registry import CptsStageChanged
from cpts_events.snp_dispatch import CareRequestReceived
from cpts_indicators.app import service
from cpts_indicators.domain.funding import (
    Attainment,
    funding_rules,
    indicator_rate,
    mission_rate,
    simulate,
)
from cpts_indicators.report import french_time, money, number
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import running_service, settings_for

COUNT_UNITS = {"professionnels", "médecins", "créneaux", "demandes", "rendez-vous", "consultations",
               "patients", "propositions"}


def test_socle_missions_get_their_fixed_part_and_the_variable_part_at_the_mean_attainment():
    simulation = simulate(funding_rules(), size_band=2, missions=[], attainments=[
        Attainment("snp.appointments.booked", "1b", "up", target=20, value=15),  # 75 %
        Attainment("snp.appointments.noshow_rate", "1b", "down", target=10, value=20),  # 50 %
        Attainment("registry.members", "registry", "up", target=100, value=1),  # funds no mission
    ])
    lines = {i.item.id: i for i in simulation.items}
    assert list(lines) == ["fonctionnement", "acces_aux_soins", "parcours", "prevention", "crise_sanitaire"]
    access = lines["acces_aux_soins"]
    assert (access.amount, access.fixed, access.variable_max) == (100_000, 50_000, 50_000)
    assert access.fixed_paid_at_start == 37_500  # 75 % of the fixed part
    assert access.attainment == pytest.approx(0.625) and access.variable == 31_250 and access.total == 81_250
    assert (lines["fonctionnement"].fixed, lines["fonctionnement"].variable_max) == (60_000, 0)
    assert lines["fonctionnement"].fixed_paid_at_start is None  # operation: no start-of-mission advance
    assert (lines["parcours"].total, lines["prevention"].total, lines["crise_sanitaire"].total) == (
        35_000, 15_000, 43_750)  # no target: fixed part only
    assert simulation.total == 60_000 + 81_250 + 35_000 + 15_000 + 43_750 == 235_000
    assert simulation.maximum == 60_000 + 100_000 + 70_000 + 30_000 + 87_500


def test_optional_missions_count_only_when_contracted_and_amounts_follow_the_size_band():
    simulation = simulate(funding_rules(), size_band=1, missions=["5-qualite-pertinence"], attainments=[])
    lines = {i.item.id: i for i in simulation.items}
    assert "qualite" in lines and "accompagnement" not in lines
    assert (lines["qualite"].amount, lines["qualite"].fixed) == (15_000, 7_500)
    assert simulation.maximum == 50_000 + 80_000 + 50_000 + 20_000 + 62_500 + 15_000
    four = simulate(funding_rules(), size_band=4, missions=["6-accompagnement-professionnels"],
                    attainments=[])
    assert four.maximum == 90_000 + 155_000 + 100_000 + 40_000 + 125_000 + 30_000
    with pytest.raises(ValueError):
        simulate(funding_rules(), size_band=5, missions=[], attainments=[])


def test_a_masked_value_is_not_assessed_and_counts_as_not_reached():
    masked = Attainment("snp.appointments.noshow", "1b", "down", target=1, value=None)
    reached = Attainment("snp.appointments.booked", "1b", "up", target=10, value=12)
    assert masked.rate is None and masked.reached is None
    rules = funding_rules().partial_attainment
    assert mission_rate(rules, [masked, reached]) == 0.5
    assert mission_rate(rules, []) == 0.0
    share = rules.model_copy(update={"rule": "share_reached"})
    half = Attainment("snp.requests.seen_within_48h_share", "1b", "up", target=100, value=50)
    assert mission_rate(rules, [half, reached]) == 0.75 and mission_rate(share, [half, reached]) == 0.5


def test_indicator_rates_follow_the_direction_of_progress_and_are_capped():
    assert indicator_rate(30, 20, "up") == 1.0
    assert indicator_rate(5, 20, "up") == 0.25
    assert indicator_rate(0, 0, "up") == 1.0
    assert indicator_rate(40, 10, "down") == 0.25
    assert indicator_rate(0, 10, "down") == 1.0
    assert indicator_rate(5, 0, "down") == 0.0
    assert indicator_rate(None, 10, "up") is None


def test_french_formats():
    assert number(230416.666, 2) == "230\u202f416,67" and money(60_000) == "60\u202f000\u00a0€"
    summer = datetime.fromisoformat("2026-07-01T06:05:00+00:00")
    assert french_time(summer) == "1er juillet 2026 à 08\u00a0h\u00a005"


def bearer(issuer: LocalIssuer, role: str, **scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=f'{role}-user', roles=[role], **scope)}"}


def year_events(kit) -> list:
    """March 2026, the ACI contract with an optional mission, and seven requests in June 2025."""
    events = kit.march().events
    events.append(kit.at(CptsStageChanged(
        cpts_id=kit.CPTS, stage="aci_signed", aci_signed_on=date(2025, 6, 1),
        missions=["1a-medecin-traitant", "1b-soins-non-programmes", "2-parcours", "3-prevention",
                  "4-crises-sanitaires", "5-qualite-pertinence"]), kit.paris("2026-01-06T10:00")))
    for i in range(7):
        received = kit.paris(f"2025-06-{10 + i:02d}T09:00")
        events.append(kit.at(CareRequestReceived(
            request_id=f"old-{i}", origin="sas", cpts_id=kit.CPTS, commune_insee="69259", departement="69",
            urgency="24h", reason_category="x", has_mt=True, age_band="adult", received_at=received),
            received, "/cpts/snp-dispatch"))
    return events


TARGETS = [{"indicator": "snp.appointments.booked", "target": 26},  # 13 booked: 50 %
           {"indicator": "snp.requests.seen_within_48h_share", "target": 100},  # 50 %: 50 %
           {"indicator": "snp.appointments.noshow", "target": 1}]  # 2, masked: not assessed


def rows_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr id="([a-z0-9_.-]+)"[^>]*>(.*?)</tr>', page, flags=re.DOTALL))


async def test_targets_report_and_funding_for_the_coordinator_with_small_cells_masked(
        database, database_url, kafka_broker, topic_prefix, tmp_path, kit):
    await kit.apply(database, year_events(kit))
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[kit.CPTS])
    base = f"/indicators/cpts/{kit.CPTS}"
    async with running_service(service, settings) as client:
        put = await client.put(f"{base}/targets/2026", json=TARGETS, headers=coordinator)
        stored = await client.get(f"{base}/targets/2026", headers=coordinator)
        report = await client.get(f"{base}/report/2026", params={"format": "json"}, headers=coordinator)
        page = await client.get(f"{base}/report/2026", headers=coordinator)
        replaced = await client.put(f"{base}/targets/2026", json=TARGETS[:1], headers=coordinator)
        other_year = await client.get(f"{base}/targets/2025", headers=coordinator)

    assert put.status_code == 200, put.text
    assert [(t["indicator"], t["target"]) for t in stored.json()["targets"]] == sorted(
        (t["indicator"], t["target"]) for t in TARGETS)
    assert [t["indicator"] for t in replaced.json()["targets"]] == ["snp.appointments.booked"]
    assert other_year.json()["targets"] == []

    assert report.status_code == 200 and report.headers["content-type"].startswith("application/json")
    body = report.json()
    identity = body["cpts"]
    assert (identity["cpts_id"], identity["name"], identity["size_band"], identity["population"],
            identity["communes"], identity["aci_signed_on"]) == (
        kit.CPTS, "CPTS de l'Est lyonnais", 2, 62000, 2, "2025-06-01")
    assert identity["missions_known"] and len(identity["missions"]) == 6
    indicators = {i["indicator_id"]: i for s in body["sections"] for i in s["indicators"]}
    assert [s["mission"] for s in body["sections"]] == ["1a", "1b", "registry"]
    received = indicators["snp.requests.received"]
    assert (received["value"]["value"], received["previous"]["value"], received["trend"]) == (18, 7, "up")
    assert received["progress"] == "neutral"
    assert [m["value"] for m in received["months"]][:4] == [0, 0, 18, 0]
    booked = indicators["snp.appointments.booked"]
    assert (booked["value"]["value"], booked["trend"], booked["progress"]) == (13, "up", "favorable")
    assert (booked["target"], booked["attainment"], booked["reached"]) == (26, 0.5, False)
    noshow = indicators["snp.appointments.noshow"]
    assert noshow["value"] == {"value": None, "masked": True}
    assert noshow["months"][2] == {"month": "2026-03", "value": None, "masked": True}
    assert (noshow["target"], noshow["attainment"], noshow["trend"]) == (1, None, None)
    for indicator in indicators.values():
        if indicator["unit"] in COUNT_UNITS:
            for cell in [indicator["value"], indicator["previous"], *indicator["months"]]:
                assert cell["value"] is None or not 1 <= cell["value"] <= 5, indicator["indicator_id"]

    funding = body["funding"]
    lines = {line["item"]: line for line in funding["lines"]}
    assert list(lines) == ["fonctionnement", "acces_aux_soins", "parcours", "prevention", "crise_sanitaire",
                           "qualite"]
    access = lines["acces_aux_soins"]
    assert (access["targets"], access["assessed"], access["attainment"]) == (3, 2, pytest.approx(1 / 3))
    assert (access["variable"], access["total"]) == (16_666.67, 66_666.67)  # 50 000 x (0.5 + 0.5 + 0) / 3
    assert lines["qualite"]["total"] == 10_000  # no target on mission 5: its fixed part
    assert funding["total"] == 230_416.67  # 60 000 + 66 666.67 + 35 000 + 15 000 + 43 750 + 10 000
    assert funding["maximum"] == 367_500
    assert body["catalogue_version"] and body["small_cell_threshold"] == 6
    assert datetime.fromisoformat(body["generated_at"]).utcoffset() is not None

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="fr">' in html and "<script" not in html and "http://" not in html
    assert "https://" not in html and "@media print" in html
    assert "CPTS de l&#x27;Est lyonnais" in html and "690049999" in html and "62\u202f000 habitants" in html
    assert "5. Qualité et pertinence des soins" in html and "ACI signé le 1er juin 2025" in html
    assert f"version {body['catalogue_version']}" in html and "(heure de Paris)" in html
    rows = rows_of(html)
    assert re.findall(r'<td class="num value">([^<]*)</td>', rows["snp.requests.received"]) == ["18", "7"]
    assert "↑" in rows["snp.appointments.booked"] and "en progrès" in rows["snp.appointments.booked"]
    assert "50\u00a0%" in rows["snp.appointments.booked"] and ">26<" in rows["snp.appointments.booked"]
    assert "mars : 18" in rows["snp.requests.received"]
    assert "&lt;&nbsp;6" in rows["snp.appointments.noshow"]
    assert "non évaluable" in rows["snp.appointments.noshow"]
    assert "mars : &lt; 6 (masqué)" in rows["snp.appointments.noshow"]
    labels = {i["indicator_id"] for i in indicators.values() if i["unit"] in COUNT_UNITS}
    for indicator_id, row in rows.items():
        if indicator_id in labels:
            shown = (re.findall(r'<td class="num value">([^<]*)</td>', row)
                     + re.findall(r" : ([0-9][^<]*)</title>", row))
            assert not any(re.fullmatch(r"[1-5]", text.strip()) for text in shown), (indicator_id, shown)
    assert "230\u202f416,67\u00a0€" in rows["funding-total"]
    assert "367\u202f500\u00a0€" in rows["funding-total"]
    assert "66\u202f666,67\u00a0€" in rows["funding-acces_aux_soins"]
    assert "2 objectif(s) évaluable(s) sur 3" in rows["funding-acces_aux_soins"]
    assert "Zorglub" not in html and "Zorglub" not in report.text


async def test_targets_are_validated_field_by_field(database, database_url, kafka_broker, topic_prefix,
                                                    tmp_path, kit):
    await kit.apply(database, year_events(kit)[:1])
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[kit.CPTS])
    url = f"/indicators/cpts/{kit.CPTS}/targets/2026"
    cases = {
        "unknown indicator": ([{"indicator": "snp.nothing", "target": 1}], "0.indicator"),
        "not a number": ([TARGETS[0], {"indicator": "snp.appointments.noshow", "target": "beaucoup"}],
                         "1.target"),
        "negative": ([{"indicator": "snp.appointments.noshow", "target": -1}], "0.target"),
        "share over 100": ([{"indicator": "snp.requests.seen_within_48h_share", "target": 120}], "0.target"),
        "twice": ([TARGETS[0], TARGETS[0]], "1.indicator"),
        "unknown field": ([{**TARGETS[0], "weight": 2}], "0.weight"),
        "missing target": ([{"indicator": "snp.appointments.noshow"}], "0.target"),
    }
    async with running_service(service, settings) as client:
        answers = {name: await client.put(url, json=body, headers=coordinator)
                   for name, (body, _) in cases.items()}
        bad_year = await client.put(f"/indicators/cpts/{kit.CPTS}/targets/1990", json=[], headers=coordinator)
        left = await client.get(url, headers=coordinator)
    for name, (_, field) in cases.items():
        response = answers[name]
        assert response.status_code == 422, name
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in response.json()["errors"]], (name, response.json())
    assert bad_year.status_code == 422 and bad_year.json()["errors"][0]["field"] == "year"
    assert left.json()["targets"] == []  # nothing stored from a refused body


async def test_targets_and_report_follow_the_scope_of_the_caller(database, database_url, kafka_broker,
                                                                 topic_prefix, tmp_path, kit):
    await kit.apply(database, year_events(kit)[:1])
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    callers = {
        "coordinator": bearer(issuer, "coordinator", cpts_ids=[kit.CPTS]),
        "secretary": bearer(issuer, "secretary", cpts_ids=[kit.CPTS]),
        "ars of the département": bearer(issuer, "ars", departements=["69"]),
        "admin": bearer(issuer, "admin"),
        "coordinator of another CPTS": bearer(issuer, "coordinator", cpts_ids=[kit.OTHER_CPTS]),
        "ars of another département": bearer(issuer, "ars", departements=["01"]),
        "professional": bearer(issuer, "professional", idnps=kit.gp(1)),
        "no token": {},
    }
    base = f"/indicators/cpts/{kit.CPTS}"
    async with running_service(service, settings) as client:
        status = {}
        for name, headers in callers.items():
            status[name] = (
                (await client.put(f"{base}/targets/2026", json=TARGETS[:1], headers=headers)).status_code,
                (await client.get(f"{base}/targets/2026", headers=headers)).status_code,
                (await client.get(f"{base}/report/2026", headers=headers)).status_code,
            )
        unknown = (await client.get(f"/indicators/cpts/{kit.OTHER_CPTS}/report/2026",
                                    headers=callers["admin"])).status_code
    assert status == {
        "coordinator": (200, 200, 200), "secretary": (403, 200, 200),
        "ars of the département": (403, 200, 200),
        "admin": (200, 200, 200), "coordinator of another CPTS": (403, 403, 403),
        "ars of another département": (403, 403, 403), "professional": (403, 403, 403),
        "no token": (401, 401, 401)}
    assert unknown == 404
