"""The CPTS steering questionnaire: 42 items as data, answers checked against their item, drafts pre-filled
from the registry's events, submission (read-only afterwards, sent to the ARS without free text), and who sees
what: the CPTS's coordinator writes, its secretary reads, the ARS reads what its départements' CPTS submitted."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer

from cpts_events import decode
from cpts_events.registry import CptsRegistered, ProfessionalRegistered
from cpts_indicators.app import service
from cpts_indicators.domain.questionnaire import (
    QUESTIONNAIRE_FILE,
    InvalidAnswer,
    QuestionnaireError,
    load_questionnaire,
    questionnaire,
)
from cpts_platform.auth import LocalIssuer
from cpts_platform.testing import eventually, running_service, settings_for

CPTS, NEIGHBOUR, ELSEWHERE = "690049999", "690049998", "010000001"
SUBMITTED = "fr.cpts.indicators.questionnaire.submitted.v1"
BOARD = {"president": "Médecin généraliste (Dr Martin)", "tresorier": "Pharmacienne"}


def test_the_questionnaire_holds_42_items_in_three_sections_with_french_labels():
    q = questionnaire()
    assert len(q.items) == 42 and [i.number for i in q.items] == list(range(1, 43))
    sections = {s.id: [i.number for i in q.items if i.section == s.id] for s in q.sections}
    assert {k: (v[0], v[-1]) for k, v in sections.items()} == {
        "structure": (1, 29), "processus": (30, 39), "resultats": (40, 42)}
    assert [s.label for s in q.sections] == ["Structure", "Processus", "Résultats"]
    assert all(i.label and i.sub_dimension for i in q.items)
    assert len({i.sub_dimension for i in q.items}) == 19
    assert {i.type for i in q.items} == {"yes_no", "number", "choice", "month", "text"}
    assert all(i.options for i in q.items if i.type == "choice")
    assert {i.id: i.prefill.source for i in q.items if i.prefill} == {
        "q03": "missions", "q06": "size_band", "q07": "communes", "q12": "members"}
    assert len(q.by_id["q13"].options) == 27
    # Q3's options are the registry's mission codes; Q26-Q27 only for operating CPTS, Q28 for the others.
    assert [o.value for o in q.by_id["q03"].options] == [
        "1a-medecin-traitant", "1b-soins-non-programmes", "2-parcours", "3-prevention", "4-crises-sanitaires",
        "5-qualite-pertinence", "6-accompagnement-professionnels"]
    assert [i.id for i in q.items if i.asked_when] == ["q26", "q27", "q28"]
    assert [i.id for i in q.items if i.free_text] == ["q17"]


@pytest.mark.parametrize(("item_id", "value", "stored"), [
    ("q22", True, True), ("q07", 12, 12), ("q02", "en_fonctionnement", "en_fonctionnement"),
    ("q13", ["medecins", "infirmiers"], ["infirmiers", "medecins"]), ("q10", ["aucun"], ["aucun"]),
    ("q01", "2021-09", "2021-09"), ("q17", {"president": " Médecin "}, {"president": "Médecin"}),
])
def test_an_answer_that_fits_its_item_is_kept(item_id, value, stored):
    assert questionnaire().by_id[item_id].validate_answer(value) == stored


@pytest.mark.parametrize(("item_id", "value"), [
    ("q22", "oui"), ("q22", 1), ("q07", "douze"), ("q07", True), ("q07", 12.5), ("q07", 0), ("q02", "ouvert"),
    ("q02", ["en_fonctionnement"]), ("q13", "medecins"), ("q13", ["medecins", "medecins"]),
    ("q13", ["dentistes", "plombiers"]), ("q10", ["aucun", "cls"]), ("q01", "09/2021"), ("q01", "2021-13"),
    ("q17", "Médecin"), ("q17", {"roi": "x"}), ("q17", {"president": ""}), ("q17", {"president": "x" * 201}),
])
def test_an_answer_that_does_not_fit_its_item_is_refused(item_id, value):
    with pytest.raises(InvalidAnswer) as caught:
        questionnaire().by_id[item_id].validate_answer(value)
    assert caught.value.item_id == item_id and caught.value.message


@pytest.mark.parametrize(("members", "band"), [
    (1, "1_5"), (5, "1_5"), (6, "6_10"), (50, "41_50"), (99, "51_99"), (100, "100_plus"), (2500, "100_plus")])
def test_registry_figures_prefill_missions_size_band_communes_and_member_band(members, band):
    figures = {"missions": ["2-parcours", "1a-medecin-traitant", "old-mission"], "size_band": 3, "communes": 14,
               "members": members}
    assert questionnaire().prefilled(figures) == {
        "q03": ["1a-medecin-traitant", "2-parcours"], "q06": "3", "q07": 14, "q12": band}
    assert questionnaire().prefilled({"missions": None, "size_band": None, "communes": 0, "members": None}) == {}


def test_the_items_asked_depend_on_the_stage():
    q = questionnaire()
    assert {"q26", "q27", "q28"} & set(q.missing({})) == set()
    assert {"q26", "q27"} <= set(q.missing({"q02": "en_fonctionnement"}))
    assert "q28" not in q.missing({"q02": "en_fonctionnement"})
    assert "q28" in q.missing({"q02": "declaration_d_interet"})


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["items"].pop(), "items"),
    (lambda d: d["items"][5].update(number=8), "number"),
    (lambda d: d["items"][25]["asked_when"].update(item="q07"), "asked_when"),
    (lambda d: d["items"][2]["prefill"].update({"from": "budget"}), "prefill|from"),
    (lambda d: d["items"][1].update(type="rating"), "type"),
    (lambda d: d["items"][1]["options"].append(d["items"][1]["options"][0]), "unique"),
    (lambda d: d["sections"].reverse(), "sections"),
])
def test_a_questionnaire_document_that_does_not_hold_together_is_refused(tmp_path, change, message):
    document = json.loads(QUESTIONNAIRE_FILE.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "questionnaire.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    if message == "items":  # 41 items still load: the count is the product's check, above
        assert len(load_questionnaire(path).items) == 41
        return
    with pytest.raises(QuestionnaireError, match=message):
        load_questionnaire(path)


def full_answers(**overrides) -> dict:
    """An answer to every item (the first option of each choice), Q2 « en fonctionnement »."""
    answers = {}
    for item in questionnaire().items:
        if item.type == "choice":
            answers[item.id] = [item.options[0].value] if item.multiple else item.options[0].value
        else:
            answers[item.id] = {"yes_no": True, "number": 9, "month": "2021-09", "text": BOARD}[item.type]
    answers["q02"] = "en_fonctionnement"
    for item_id in ("q03", "q06", "q07", "q12", "q28"):  # pre-filled ones left to the registry; Q28 not asked
        answers.pop(item_id)
    return {**answers, **overrides}


def bearer(issuer: LocalIssuer, role: str, **scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject=f'{role}-user', roles=[role], **scope)}"}


async def registry_known(client, publish, issuer) -> None:
    """Three CPTS (two in the Rhône, one in the Ain), seven members of the first; wait until the indicators
    consumers have applied them."""
    await publish(
        CptsRegistered(cpts_id=CPTS, name="CPTS de l'Est lyonnais", stage="aci_signed",
                       communes=["69259", "69266", "69286"], population=62000, size_band=2, departements=["69"],
                       missions=["1b-soins-non-programmes", "1a-medecin-traitant", "3-prevention"]),
        CptsRegistered(cpts_id=NEIGHBOUR, name="CPTS des Monts du Lyonnais", stage="letter_of_intent",
                       communes=["69001"], population=30000, size_band=1, departements=["69"]),
        CptsRegistered(cpts_id=ELSEWHERE, name="CPTS de la Bresse", stage="aci_signed", communes=["01053"],
                       population=41000, size_band=2, departements=["01"]),
        *[ProfessionalRegistered(idnps=f"8101000000{n:02d}", family_name=f"Nom{n}", given_name="Prénom",
                                 profession_code="10", specialty_code="SM54", cpts_ids=[CPTS])
          for n in range(1, 8)])
    admin = bearer(issuer, "admin")

    async def applied():
        draft = (await client.get(f"/indicators/cpts/{CPTS}/questionnaires/2026", headers=admin)).json()
        other = await client.get(f"/indicators/cpts/{ELSEWHERE}/questionnaires/2026", headers=admin)
        prefilled = {a["item_id"]: a["value"] for a in draft.get("answers", []) if a["prefilled"]}
        return other.status_code == 200 and prefilled.get("q12") == "6_10" and prefilled

    return await eventually(applied, timeout=30)


async def questionnaire_events(kafka_broker: str, topic: str, count: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: list = []
    try:
        async def read():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend((r, decode(r.headers, r.key, r.value)) for r in records)
            return len([e for _, e in found if e.type == SUBMITTED]) >= count

        await eventually(read, timeout=20)
    finally:
        await consumer.stop()
    return [(record, event) for record, event in found if event.type == SUBMITTED]


async def test_a_coordinator_fills_in_a_prefilled_draft_submits_it_and_the_ars_receives_it_without_free_text(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    coordinator = bearer(issuer, "coordinator", cpts_ids=[CPTS])
    path = f"/indicators/cpts/{CPTS}/questionnaires/2026"
    async with running_service(service, settings) as client:
        prefilled = await registry_known(client, publish, issuer)
        items = (await client.get("/indicators/questionnaire", headers=coordinator)).json()
        new = (await client.get(path, headers=coordinator)).json()

        partial = await client.put(path, headers=coordinator, json={"answers": {"q02": "en_fonctionnement",
                                                                                "q07": 4, "q22": False}})
        invalid = await client.put(path, headers=coordinator, json={"answers": {
            "q22": "oui", "q07": "quatre", "q99": 1, "q10": ["aucun", "cls"], "q34": True}})
        after_invalid = (await client.get(path, headers=coordinator)).json()
        cleared = (await client.put(path, headers=coordinator, json={"answers": {"q07": None}})).json()
        incomplete = await client.post(path + "/submit", headers=coordinator)

        draft = await client.put(path, headers=coordinator, json={"answers": full_answers(q07=4)})
        submitted = await client.post(path + "/submit", headers=coordinator)
        again = await client.post(path + "/submit", headers=coordinator)
        edit = await client.put(path, headers=coordinator, json={"answers": {"q22": True}})
        read_back = (await client.get(path, headers=coordinator)).json()

        last_year = f"/indicators/cpts/{CPTS}/questionnaires/2025"
        await client.put(last_year, headers=coordinator, json={"answers": full_answers(q42="50", q30="faible")})
        assert (await client.post(last_year + "/submit", headers=coordinator)).status_code == 200
        await client.put(f"/indicators/cpts/{CPTS}/questionnaires/2027", headers=coordinator,
                         json={"answers": {"q22": True}})

        ars = bearer(issuer, "ars", departements=["69"])
        regional = (await client.get("/indicators/questionnaires", params={"year": 2026}, headers=ars)).json()
        ain = (await client.get("/indicators/questionnaires?year=2026",
                                headers=bearer(issuer, "ars", departements=["01"]))).json()
        history = (await client.get(f"/indicators/cpts/{CPTS}/questionnaires", headers=ars)).json()
        own_history = (await client.get(f"/indicators/cpts/{CPTS}/questionnaires", headers=coordinator)).json()
        by_ars = await client.get(path, headers=ars)
        events = await questionnaire_events(kafka_broker, topic_prefix + "indicators", 2)

    assert len(items["items"]) == 42 and items["items"][2]["prefill"] == {"from": "missions"}
    assert prefilled == {"q03": ["1a-medecin-traitant", "1b-soins-non-programmes", "3-prevention"], "q06": "2",
                         "q07": 3, "q12": "6_10"}
    assert new["status"] == "new" and new["updated_at"] is None and len(new["missing"]) == 35
    assert "q07" not in new["missing"] and "q26" not in new["missing"]  # Q26 asked once Q2 says operating

    assert partial.status_code == 200
    body = partial.json()
    assert body["status"] == "draft"
    answers = {a["item_id"]: (a["value"], a["prefilled"]) for a in body["answers"]}
    assert answers["q07"] == (4, False) and answers["q22"] == (False, False) and answers["q06"] == ("2", True)
    assert {"q26", "q27"} <= set(body["missing"]) and "q28" not in body["missing"]

    assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/problem+json"
    problem = invalid.json()
    assert {e["field"] for e in problem["errors"]} == {"answers.q22", "answers.q07", "answers.q99",
                                                       "answers.q10"}
    assert "quatre" not in invalid.text  # the values given are not echoed
    assert {a["item_id"]: a["value"] for a in after_invalid["answers"]}["q07"] == 4  # nothing saved
    assert "q34" not in {a["item_id"] for a in after_invalid["answers"]}
    assert {a["item_id"]: (a["value"], a["prefilled"]) for a in cleared["answers"]}["q07"] == (3, True)

    assert incomplete.status_code == 422
    missing = {e["field"] for e in incomplete.json()["errors"]}
    assert "answers.q01" in missing and "answers.q26" in missing
    assert not missing & {"answers.q03", "answers.q06", "answers.q07", "answers.q12", "answers.q28"}

    assert draft.status_code == 200 and draft.json()["missing"] == []
    assert submitted.status_code == 200
    done = submitted.json()
    assert done["status"] == "submitted" and done["submitted_at"] and done["missing"] == []
    kept = {a["item_id"]: (a["value"], a["prefilled"]) for a in done["answers"]}
    assert len(kept) == 41 and "q28" not in kept  # 42 items, Q28 not asked of an operating CPTS
    assert kept["q12"] == ("6_10", True) and kept["q07"] == (4, False) and kept["q17"] == (BOARD, False)
    assert again.status_code == 409 and edit.status_code == 409
    assert read_back["status"] == "submitted" and {a["item_id"]: a["value"] for a in read_back["answers"]} == {
        k: v for k, (v, _) in kept.items()}

    assert regional["year"] == 2026 and [c["cpts_id"] for c in regional["cpts"]] == [NEIGHBOUR, CPTS]
    neighbour, ours = regional["cpts"]
    assert neighbour["status"] == "new" and neighbour["answers"] == {}
    assert ours["status"] == "submitted" and ours["name"] == "CPTS de l'Est lyonnais"
    assert ours["answers"]["q06"] == "2" and ours["answers"]["q42"] == "100"
    assert [c["cpts_id"] for c in ain["cpts"]] == [ELSEWHERE]
    assert [(y["year"], y["status"]) for y in history["years"]] == [(2025, "submitted"), (2026, "submitted")]
    assert {a["item_id"]: a["value"] for a in history["years"][0]["answers"]}["q42"] == "50"
    assert [(y["year"], y["status"]) for y in own_history["years"]] == [
        (2025, "submitted"), (2026, "submitted"), (2027, "draft")]
    assert by_ars.status_code == 200

    assert len(events) == 2
    record, event = next((r, e) for r, e in events if e.payload.year == 2026)
    assert record.key.decode() == CPTS and event.payload.cpts_id == CPTS
    sent = {a.item_id: (a.value, a.prefilled) for a in event.payload.answers}
    assert sent["q12"] == ("6_10", True) and sent["q22"] == (True, False) and sent["q07"] == (4, False)
    assert "q17" not in sent and event.payload.withheld == ["q17"] and len(sent) == 40
    assert "Martin" not in record.value.decode()


async def test_only_the_coordinator_writes_and_the_ars_reads_only_its_departements_submissions(
        database_url, kafka_broker, topic_prefix, tmp_path, publish):
    settings = settings_for(service, database_url=database_url, kafka_broker=kafka_broker,
                            topic_prefix=topic_prefix, var_dir=tmp_path / "var")
    issuer = LocalIssuer(tmp_path / "var" / "local-issuer")
    path = f"/indicators/cpts/{CPTS}/questionnaires/2026"
    async with running_service(service, settings) as client:
        await registry_known(client, publish, issuer)
        coordinator = bearer(issuer, "coordinator", cpts_ids=[CPTS])
        secretary = bearer(issuer, "secretary", cpts_ids=[CPTS])
        ars = bearer(issuer, "ars", departements=["69"])
        other_ars = bearer(issuer, "ars", departements=["01"])
        other_coordinator = bearer(issuer, "coordinator", cpts_ids=[ELSEWHERE])
        admin = bearer(issuer, "admin")
        body = {"answers": {"q22": True}}
        status = {}
        for name, method, url, headers in [
            ("coordinator saves", "put", path, coordinator),
            ("secretary reads the draft", "get", path, secretary),
            ("secretary saves", "put", path, secretary),
            ("secretary submits", "post", path + "/submit", secretary),
            ("ars saves", "put", path, ars),
            ("ars reads a draft", "get", path, ars),
            ("ars of another département reads", "get", path, other_ars),
            ("ars of another département, history", "get", f"/indicators/cpts/{CPTS}/questionnaires", other_ars),
            ("coordinator of another CPTS reads", "get", path, other_coordinator),
            ("coordinator of another CPTS saves", "put", path, other_coordinator),
            ("coordinator, regional view", "get", "/indicators/questionnaires?year=2026", coordinator),
            ("regional view without a year", "get", "/indicators/questionnaires", ars),
            ("regulator reads the items", "get", "/indicators/questionnaire",
             bearer(issuer, "regulator", departements=["69"])),
            ("no token", "get", path, {}),
            ("unknown CPTS", "get", "/indicators/cpts/690000001/questionnaires/2026", admin),
            ("year out of range", "get", f"/indicators/cpts/{CPTS}/questionnaires/1990", admin),
            ("unknown field", "put", path, coordinator),
            ("admin saves", "put", f"/indicators/cpts/{ELSEWHERE}/questionnaires/2026", admin),
        ]:
            payload = {"answers": {}, "comment": "x"} if name == "unknown field" else body
            response = await client.request(method, url, headers=headers,
                                            json=payload if method == "put" else None)
            status[name] = response.status_code
        unknown_field = (await client.put(path, headers=coordinator, json={"answers": {}, "comment": "x"})).json()
        # Three first saves of the same questionnaire at once: none is lost, none fails.
        first = f"/indicators/cpts/{ELSEWHERE}/questionnaires/2025"
        saves = await asyncio.gather(*[client.put(first, headers=admin, json={"answers": answer})
                                       for answer in ({"q22": True}, {"q25": False}, {"q34": True})])
        together = (await client.get(first, headers=admin)).json()
    assert status == {
        "coordinator saves": 200, "secretary reads the draft": 200, "secretary saves": 403,
        "secretary submits": 403, "ars saves": 403, "ars reads a draft": 404,
        "ars of another département reads": 403, "ars of another département, history": 403,
        "coordinator of another CPTS reads": 403, "coordinator of another CPTS saves": 403,
        "coordinator, regional view": 403, "regional view without a year": 422,
        "regulator reads the items": 403, "no token": 401, "unknown CPTS": 404, "year out of range": 422,
        "unknown field": 422, "admin saves": 200}
    assert [e["field"] for e in unknown_field["errors"]] == ["comment"]
    assert [r.status_code for r in saves] == [200, 200, 200]
    assert {a["item_id"]: a["value"] for a in together["answers"] if not a["prefilled"]} == {
        "q22": True, "q25": False, "q34": True}
