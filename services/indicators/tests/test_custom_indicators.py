"""Custom indicators: a CPTS's coordinator defines counts and ratios of facts through the API; they are computed
from the stored facts (past periods included), masked like the built-in ones, and scoped to their CPTS."""

from __future__ import annotations

import csv
import io

import pytest

from cpts_indicators.app import service
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.domain.custom import CustomPart, InvalidDefinition, check_definition
from cpts_indicators.domain.periods import PeriodKind, parse_period
from cpts_indicators.queries import published_values
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import running_service, settings_for

SAS_REQUESTS = {"id": "demandes_sas", "label": "Demandes venues du SAS", "unit": "demandes", "direction": "up",
                "kind": "count", "numerator": {"fact": "care_request.received", "filters": {"origin": ["sas"]}}}
FULFILLED_SHARE = {
    "id": "part_honores", "label": "Part des rendez-vous honorés", "unit": "%", "direction": "up",
    "kind": "ratio", "numerator": {"fact": "appointment.fulfilled"},
    "denominator": {"fact": "appointment.booked", "filters": {"kind": ["slot", "en_sus"]}}}
EMERGENCY_SHARE = {
    "id": "orientes_urgences", "label": "Part des demandes orientées aux urgences", "unit": "%",
    "direction": "down", "kind": "ratio",
    "numerator": {"fact": "care_request.closed_without_slot", "filters": {"orientation": ["emergency_department"]}},
    "denominator": {"fact": "care_request.received"}}


def bearer(issuer: LocalIssuer, role: str, **scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=f'{role}-user', roles=[role], **scope)}"}


@pytest.fixture
def settings(database_url, kafka_broker, topic_prefix, tmp_path):
    return settings_for(service, database_url=database_url, kafka_broker=kafka_broker, topic_prefix=topic_prefix,
                        var_dir=tmp_path / "var")


async def test_custom_counts_and_ratios_are_computed_on_history_and_masked_like_the_others(
        database, settings, tmp_path, kit):
    await kit.apply(database, kit.march().events)  # facts recorded before any definition exists
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[kit.CPTS])
    base = f"/indicators/cpts/{kit.CPTS}"
    async with running_service(service, settings) as client:
        created = [await client.post(f"{base}/custom", json=body, headers=coordinator)
                   for body in (SAS_REQUESTS, FULFILLED_SHARE, EMERGENCY_SHARE)]
        listed = (await client.get(f"{base}/custom", headers=coordinator)).json()
        march = (await client.get(base, params={"period": "month", "at": "2026-03"}, headers=coordinator)).json()
        series = (await client.get(f"{base}/series/custom.demandes_sas",
                                   params={"period": "month", "from": "2026-02", "to": "2026-03"},
                                   headers=coordinator)).json()
        part = await client.get(f"{base}/series/custom.part_honores.numerator", headers=coordinator)
        export = await client.get(f"{base}/export.csv", params={"period": "month", "from": "2026-03",
                                                                 "to": "2026-03"}, headers=coordinator)
        builtin_catalogue = (await client.get("/indicators/catalogue", headers=coordinator)).json()
        deleted = await client.delete(f"{base}/custom/demandes_sas", headers=coordinator)
        after = (await client.get(base, params={"period": "month", "at": "2026-03"}, headers=coordinator)).json()
        gone = await client.get(f"{base}/series/custom.demandes_sas", headers=coordinator)
        kept = (await client.get(f"{base}/custom/demandes_sas", headers=coordinator)).json()
        again = await client.post(f"{base}/custom", json={**SAS_REQUESTS, "label": "Demandes du SAS"},
                                  headers=coordinator)

    assert [r.status_code for r in created] == [201, 201, 201]
    assert created[0].headers["location"] == f"{base}/custom/demandes_sas"
    assert created[1].json()["indicator_id"] == "custom.part_honores" and created[1].json()["version"] == 1
    assert [d["id"] for d in listed] == ["demandes_sas", "orientes_urgences", "part_honores"]
    values = {i["indicator_id"]: i for i in march["indicators"]}
    assert set(values) == {d.id for d in catalogue().indicators} | {
        "custom.demandes_sas", "custom.part_honores", "custom.orientes_urgences"}  # ratio parts hidden
    assert values["custom.demandes_sas"]["value"] == 9  # the 9 SAS requests of March
    assert values["custom.demandes_sas"]["label"] == "Demandes venues du SAS"
    assert values["custom.part_honores"]["value"] == round(100 * 10 / 13, 1)
    # 2 oriented to the emergency department: a small count, masked, and the ratio built on it too.
    assert (values["custom.orientes_urgences"]["value"], values["custom.orientes_urgences"]["masked"]) == \
        (None, True)
    assert [(p["period"]["key"], p["value"]) for p in series["points"]] == [("2026-02", 0), ("2026-03", 9)]
    assert series["indicator"]["mission"] == "custom" and part.status_code == 404
    rows = {r["indicateur"]: r for r in csv.DictReader(io.StringIO(export.text)) if not r["ventilation"]}
    assert rows["custom.demandes_sas"]["valeur"] == "9" and rows["custom.orientes_urgences"]["masque"] == "true"
    assert not any(i["id"].startswith("custom.") for i in builtin_catalogue["indicators"])
    assert deleted.status_code == 204
    assert "custom.demandes_sas" not in {i["indicator_id"] for i in after["indicators"]}
    assert gone.status_code == 404 and kept["active"] is False
    assert again.status_code == 201 and again.json()["version"] == 2


async def test_definitions_are_checked_field_by_field_and_kept_to_their_cpts(database, settings, tmp_path, kit):
    await kit.apply(database, kit.march().events)
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[kit.CPTS])
    url = f"/indicators/cpts/{kit.CPTS}/custom"
    invalid = {
        "unknown fact": ({**SAS_REQUESTS, "numerator": {"fact": "patient.identity"}}, "numerator.fact"),
        "unknown attribute": ({**SAS_REQUESTS, "numerator": {"fact": "care_request.received",
                                                             "filters": {"commune_insee": ["69259"]}}},
                              "numerator.filters.commune_insee"),
        "unknown value": ({**SAS_REQUESTS, "numerator": {"fact": "care_request.received",
                                                         "filters": {"origin": ["sas", "fax"]}}},
                          "numerator.filters.origin.1"),
        "boolean as text": ({**SAS_REQUESTS, "numerator": {"fact": "care_request.received",
                                                           "filters": {"has_mt": ["oui"]}}},
                            "numerator.filters.has_mt.0"),
        "ratio without denominator": ({**FULFILLED_SHARE, "denominator": None}, "denominator"),
        "bad denominator": ({**FULFILLED_SHARE, "denominator": {"fact": "nothing"}}, "denominator.fact"),
        "bad id": ({**SAS_REQUESTS, "id": "Demandes SAS"}, "id"),
        "bad direction": ({**SAS_REQUESTS, "direction": "sideways"}, "direction"),
        "unknown field": ({**SAS_REQUESTS, "sql": "select"}, "sql"),
    }
    async with running_service(service, settings) as client:
        answers = {name: await client.post(url, json=body, headers=coordinator)
                   for name, (body, _) in invalid.items()}
        first = await client.post(url, json=SAS_REQUESTS, headers=coordinator)
        status = {}
        for name, method, path, headers in [
            ("duplicate", "POST", url, coordinator),
            ("other coordinator defines", "POST", url, bearer(issuer, "coordinator", cpts_ids=[kit.OTHER_CPTS])),
            ("other coordinator reads", "GET", url, bearer(issuer, "coordinator", cpts_ids=[kit.OTHER_CPTS])),
            ("secretary defines", "POST", url, bearer(issuer, "secretary", cpts_ids=[kit.CPTS])),
            ("secretary reads", "GET", url, bearer(issuer, "secretary", cpts_ids=[kit.CPTS])),
            ("ars of the département reads", "GET", f"{url}/demandes_sas", bearer(issuer, "ars",
                                                                                 departements=["69"])),
            ("ars of the département defines", "POST", url, bearer(issuer, "ars", departements=["69"])),
            ("ars of another département reads", "GET", url, bearer(issuer, "ars", departements=["01"])),
            ("ars deletes", "DELETE", f"{url}/demandes_sas", bearer(issuer, "ars", departements=["69"])),
            ("admin reads", "GET", url, bearer(issuer, "admin")),
            ("unknown indicator", "GET", f"{url}/nothing_here", coordinator),
            ("unknown CPTS", "POST", "/indicators/cpts/010000002/custom",
             bearer(issuer, "coordinator", cpts_ids=["010000002"])),
            ("facts vocabulary", "GET", "/indicators/custom-facts", coordinator),
        ]:
            body = SAS_REQUESTS if method == "POST" else None
            status[name] = (await client.request(method, path, json=body, headers=headers)).status_code
        vocabulary = (await client.get("/indicators/custom-facts", headers=coordinator)).json()
    for name, (_, field) in invalid.items():
        answer = answers[name]
        assert answer.status_code == 422, name
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in answer.json()["errors"]], (name, answer.json())
    assert "fax" not in answers["unknown value"].text and "69259" not in answers["unknown attribute"].text
    assert first.status_code == 201
    assert status == {
        "duplicate": 409, "other coordinator defines": 403, "other coordinator reads": 403,
        "secretary defines": 403, "secretary reads": 200, "ars of the département reads": 200,
        "ars of the département defines": 403, "ars of another département reads": 403, "ars deletes": 403,
        "admin reads": 200, "unknown indicator": 404, "unknown CPTS": 404, "facts vocabulary": 200}
    received = next(k for k in vocabulary if k["fact"] == "care_request.received")
    assert received["filters"]["origin"] == ["sas", "cpts_phone", "member_referral"]
    assert received["filters"]["has_mt"] == [True, False]


async def test_a_definition_made_today_is_computed_like_a_builtin_one_over_past_periods(database, kit):
    """The same selection as the built-in `snp.requests.received`, defined as a custom count: equal values
    for every week of the past, masked alike."""
    await kit.apply(database, kit.march().events)
    custom = check_definition(catalogue(), slug="recues", version=1, label="Reçues", description="",
                              unit="demandes", direction="up", kind="count",
                              numerator=CustomPart(fact="care_request.received"), denominator=None, scale=1)
    definitions = catalogue().model_copy(update={"indicators": [*catalogue().indicators, *custom]})
    weeks = [parse_period(PeriodKind.WEEK, f"2026-W{n:02d}") for n in range(9, 15)]
    async with database.sessions() as session:
        found = await published_values(session, cpts_id=kit.CPTS, periods=weeks, threshold=6,
                                       ids=["custom.recues", "snp.requests.received"], definitions=definitions)
    by = {(v.definition.id, v.period.key): v.total for v in found}
    assert [by[("custom.recues", w.key)] for w in weeks] == [by[("snp.requests.received", w.key)] for w in weeks]
    assert sum(by[("custom.recues", w.key)].value or 0 for w in weeks) > 0

    with pytest.raises(InvalidDefinition) as error:
        check_definition(catalogue(), slug="x1", version=1, label="x", description="", unit="u", direction="up",
                         kind="count", numerator=CustomPart(fact="appointment.booked",
                                                            filters={"request_cpts": [True], "kind": ["?"]}),
                         denominator=CustomPart(fact="appointment.booked"), scale=1)
    assert [field for field, _ in error.value.errors] == ["numerator.filters.kind.0", "denominator"]
