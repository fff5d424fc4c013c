"""FHIR R4 views: the catalogue as a Measure, a CPTS's period as a summary MeasureReport (masked cells
absent)."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport

from cpts_events import encode
from cpts_indicators import queries
from cpts_indicators.api.fhir import DATA_ABSENT_EXT, measure, measure_report
from cpts_indicators.app import service
from cpts_indicators.domain.catalogue import catalogue
from cpts_indicators.domain.periods import PeriodKind, parse_period
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for

BASE = "http://service/fhir"


def by_code(report: dict) -> dict:
    return {g["code"]["coding"][0]["code"]: g for g in report["group"]}


async def test_the_catalogue_is_one_valid_measure_with_a_group_per_indicator():
    resource = measure(BASE)
    Measure.model_validate(resource)
    assert resource["version"] == catalogue().version
    codes = [g["code"]["coding"][0]["code"] for g in resource["group"]]
    assert codes == [d.id for d in catalogue().indicators]


async def test_a_measure_report_has_a_group_per_indicator_and_masked_cells_only_as_absent(database, kit):
    await kit.apply(database, kit.march().events)
    march = parse_period(PeriodKind.MONTH, "2026-03")
    async with database.sessions() as session:
        values = await queries.published_values(session, cpts_id=kit.CPTS, periods=[march], threshold=6)
    report = measure_report(BASE, kit.CPTS, march, values, threshold=6, now=datetime.now(UTC))
    MeasureReport.model_validate(report)
    assert report["type"] == "summary" and report["status"] == "complete"
    assert report["subject"]["identifier"]["value"] == kit.CPTS
    groups = by_code(report)
    assert len(groups) == len(catalogue().indicators)
    received = groups["snp.requests.received"]
    assert received["measureScore"]["value"] == 18
    assert received["population"][0]["count"] == 18
    strata = {s["value"]["text"]: s for s in received["stratifier"][0]["stratum"]}
    assert strata["sas"]["measureScore"]["value"] == 9
    absent = {"extension": [{"url": DATA_ABSENT_EXT, "valueCode": "masked"}]}
    assert strata["cpts_phone"]["measureScore"] == absent  # 3: masked, no value anywhere
    noshow = groups["snp.appointments.noshow"]
    assert noshow["measureScore"] == absent and "population" not in noshow
    assert "Zorglub" not in str(report)


async def test_fhir_search_answers_bundles_and_operation_outcomes(
        database_url, kafka_broker, topic_prefix, tmp_path, publish, kit):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    headers = {"Authorization": f"Bearer {issuer.mint(subject='ars', roles=['ars'], departements=['69'])}"}
    async with running_service(service, settings) as client:
        await publish(*[encode(e) for e in kit.march().events])

        async def report():
            response = await client.get("/fhir/MeasureReport",
                                        params={"subject": kit.CPTS, "period": "2026-03"}, headers=headers)
            if response.status_code != 200:
                return None
            groups = by_code(response.json()["entry"][0]["resource"])
            return response if groups["snp.requests.received"].get("measureScore", {}).get("value") == 18 \
                else None

        found = await eventually(report, timeout=30)
        measures = await client.get("/fhir/Measure", headers=headers)
        bad_period = await client.get("/fhir/MeasureReport",
                                      params={"subject": kit.CPTS, "period": "2026-13x"}, headers=headers)
        no_subject = await client.get("/fhir/MeasureReport", headers=headers)
        elsewhere = issuer.mint(subject="a", roles=["ars"], departements=["13"])
        other = await client.get("/fhir/MeasureReport", params={"subject": kit.OTHER_CPTS},
                                 headers={"Authorization": f"Bearer {elsewhere}"})
        anonymous = await client.get("/fhir/Measure")
    assert found.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(found.json())
    assert bundle.type == "searchset" and bundle.total == 1
    assert isinstance(Bundle.model_validate(measures.json()).entry[0].resource, Measure)
    assert bad_period.status_code == 400 and bad_period.json()["resourceType"] == "OperationOutcome"
    assert no_subject.status_code == 400
    assert other.status_code in (403, 404) and anonymous.status_code == 401
