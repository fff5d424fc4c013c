"""HTTP API of the steering questionnaire: the yearly self-assessment of a CPTS (42 items, `domain/questionnaire`).

A CPTS's coordinator (its leader) saves drafts, partial answers allowed, then submits once per year; a submitted
questionnaire is read-only (409). Unanswered items the registry knows (missions, size band, communes, members)
come pre-filled, flagged as such, and are kept as answers on submission. The coordinators and secretaries of
the CPTS read it; the ARS reads the submitted questionnaires of the CPTS of its départements (one CPTS over the
years, or every CPTS side by side for a year), never the drafts; admins everything.

On submission, `fr.cpts.indicators.questionnaire.submitted.v1` goes to the ARS on the `indicators` topic,
written to the outbox in the same transaction, without the free-text answers (they may name people).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from cpts_events import new_event
from cpts_events.indicators import QuestionnaireAnswer, QuestionnaireSubmitted
from cpts_indicators.api.routes import CptsId, authorize
from cpts_indicators.api.schemas import (
    CptsQuestionnaire,
    CptsQuestionnaireColumn,
    CptsQuestionnaireHistory,
    QuestionnaireAnswerPublic,
    RegionalQuestionnaires,
)
from cpts_indicators.domain.questionnaire import InvalidAnswer, Questionnaire, questionnaire
from cpts_indicators.repository import (
    SteeringQuestionnaire,
    cpts_contract,
    cpts_profile,
    cpts_territories,
    lock_questionnaire,
    professional_figures,
    questionnaire_of,
    questionnaires,
)
from cpts_indicators.snapshots import SOURCE
from cpts_platform.auth import Principal, Role, ensure, require_roles
from cpts_platform.outbox import add_events
from cpts_platform.problems import ProblemError, RequestModel
from cpts_platform.service import DatabaseDep, ReadSessionDep

router = APIRouter(prefix="/indicators", tags=["questionnaire de pilotage"])

Follower = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.SECRETARY, Role.ARS))]
Leader = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Regional = Annotated[Principal, Depends(require_roles(Role.ARS))]
Year = Annotated[int, Path(ge=2019, le=2100, description="Année du questionnaire.", examples=[2026])]

DRAFT, SUBMITTED = "draft", "submitted"


class QuestionnaireDraft(RequestModel):
    answers: dict[str, Any] = Field(
        description="Réponses par question (q01 à q42), partielles ; null efface une réponse enregistrée.",
        examples=[{"q02": "en_fonctionnement", "q07": 12, "q22": True, "q13": ["medecins", "infirmiers"]}])


def _own(principal: Principal, cpts_id: str) -> bool:
    """The caller is an admin or a coordinator/secretary of the CPTS (drafts are theirs; the ARS sees only
    what was submitted)."""
    return Role.ADMIN in principal.roles or bool(
        principal.roles & {Role.COORDINATOR, Role.SECRETARY} and principal.can_access_cpts(cpts_id))


def _ensure_leader(principal: Principal, cpts_id: str) -> None:
    ensure(Role.ADMIN in principal.roles
           or (Role.COORDINATOR in principal.roles and principal.can_access_cpts(cpts_id)),
           f"Only the coordinator of CPTS {cpts_id} fills in its questionnaire.")


async def registry_figures(session: AsyncSession, cpts_id: str) -> dict[str, Any]:
    """What the registry's read model says of the CPTS, for the pre-filled items."""
    profile = await cpts_profile(session, cpts_id) or {}
    contract = await cpts_contract(session, cpts_id) or {}
    members, _, _, _ = await professional_figures(session, cpts_id)
    return {"size_band": profile.get("size_band"), "communes": profile.get("communes"),
            "missions": contract.get("missions"), "members": members or None}


def _view(definitions: Questionnaire, cpts_id: str, year: int, row: SteeringQuestionnaire | None,
          figures: dict[str, Any] | None) -> CptsQuestionnaire:
    """The questionnaire as answered; a draft's unanswered pre-fillable items carry the registry's values."""
    answers = dict(row.answers) if row is not None else {}
    from_registry = set(row.prefilled) if row is not None else set()
    if row is None or row.status == DRAFT:
        for item_id, value in definitions.prefilled(figures or {}).items():
            if answers.get(item_id) is None:
                answers[item_id] = value
                from_registry.add(item_id)
    return CptsQuestionnaire(
        cpts_id=cpts_id, year=year, status=row.status if row is not None else "new",
        questionnaire_version=row.questionnaire_version if row is not None else definitions.version,
        answers=[QuestionnaireAnswerPublic(item_id=item.id, value=answers[item.id],
                                           prefilled=item.id in from_registry)
                 for item in definitions.items if answers.get(item.id) is not None],
        missing=definitions.missing(answers) if row is None or row.status == DRAFT else [],
        updated_at=row.updated_at if row is not None else None,
        submitted_at=row.submitted_at if row is not None else None)


def _invalid_answers(errors: list[dict[str, str]], detail: str) -> ProblemError:
    return ProblemError(422, detail, title="Unprocessable Content", errors=errors)


def _validated(definitions: Questionnaire, answers: dict[str, Any]) -> dict[str, Any]:
    """Each answer checked against its item (None kept: it clears the answer); 422 naming every bad item."""
    items, out, errors = definitions.by_id, {}, []
    for item_id, value in answers.items():
        item = items.get(item_id)
        if item is None:
            errors.append({"field": f"answers.{item_id}", "in": "body", "message": "question inconnue"})
            continue
        try:
            out[item_id] = None if value is None else item.validate_answer(value)
        except InvalidAnswer as exc:
            errors.append({"field": f"answers.{item_id}", "in": "body", "message": exc.message})
    if errors:
        raise _invalid_answers(errors, "Invalid answers: " + ", ".join(e["field"] for e in errors) + ".")
    return out


def _read_only(cpts_id: str, year: int) -> ProblemError:
    return ProblemError(409, f"The questionnaire of CPTS {cpts_id} for {year} was submitted: it is read-only.")


@router.get("/questionnaire", response_model=Questionnaire, response_model_by_alias=True,
            summary="Le questionnaire de pilotage : 42 questions (Structure, Processus, Résultats), types de "
                    "réponse, options et pré-remplissage.")
async def read_questionnaire(_: Follower) -> Questionnaire:
    return questionnaire()


@router.get("/cpts/{cpts_id}/questionnaires/{year}", response_model=CptsQuestionnaire,
            summary="Le questionnaire d'une CPTS pour une année : brouillon (questions connues du registre "
                    "pré-remplies) ou soumis. L'ARS ne voit que les questionnaires soumis.")
async def read_cpts_questionnaire(cpts_id: CptsId, year: Year, principal: Follower, session: ReadSessionDep
                                  ) -> CptsQuestionnaire:
    await authorize(principal, cpts_id, session)
    row = await questionnaire_of(session, cpts_id, year)
    if not _own(principal, cpts_id):
        if row is None or row.status != SUBMITTED:
            raise ProblemError(404, f"No submitted questionnaire of CPTS {cpts_id} for {year}.")
        return _view(questionnaire(), cpts_id, year, row, None)
    figures = await registry_figures(session, cpts_id) if row is None or row.status == DRAFT else None
    return _view(questionnaire(), cpts_id, year, row, figures)


@router.put("/cpts/{cpts_id}/questionnaires/{year}", response_model=CptsQuestionnaire,
            summary="Enregistrer le brouillon (réponses partielles, chacune vérifiée selon sa question ; null "
                    "efface). Réservé au coordinateur de la CPTS ; 409 une fois soumis.")
async def save_draft(cpts_id: CptsId, year: Year, body: QuestionnaireDraft, principal: Leader,
                     database: DatabaseDep) -> CptsQuestionnaire:
    _ensure_leader(principal, cpts_id)
    definitions = questionnaire()
    answers = _validated(definitions, body.answers)
    now = datetime.now(UTC)
    async with database.transaction() as session:
        await authorize(principal, cpts_id, session)
        row = await lock_questionnaire(session, cpts_id, year, version=definitions.version,
                                       by=principal.subject, now=now)
        if row.status == SUBMITTED:
            raise _read_only(cpts_id, year)
        merged = {**row.answers, **answers}
        row.answers = {k: v for k, v in merged.items() if v is not None}
        row.questionnaire_version, row.updated_at, row.updated_by = definitions.version, now, principal.subject
        session.add(row)
        await session.flush()
        return _view(definitions, cpts_id, year, row, await registry_figures(session, cpts_id))


@router.post("/cpts/{cpts_id}/questionnaires/{year}/submit", response_model=CptsQuestionnaire,
             summary="Soumettre le questionnaire (toutes les questions obligatoires répondues, valeurs "
                     "pré-remplies comprises ; sinon 422 les listant). Il passe en lecture seule et part à l'ARS.")
async def submit(cpts_id: CptsId, year: Year, principal: Leader, database: DatabaseDep) -> CptsQuestionnaire:
    _ensure_leader(principal, cpts_id)
    definitions = questionnaire()
    now = datetime.now(UTC)
    async with database.transaction() as session:
        await authorize(principal, cpts_id, session)
        row = await lock_questionnaire(session, cpts_id, year, version=definitions.version,
                                       by=principal.subject, now=now)
        if row.status == SUBMITTED:
            raise _read_only(cpts_id, year)
        answered = dict(row.answers)
        prefill = {k: v for k, v in definitions.prefilled(await registry_figures(session, cpts_id)).items()
                   if answered.get(k) is None}
        answers = {**answered, **prefill}
        # An item no longer asked (Q26-Q28 depend on the stage of Q2) is not kept.
        answers = {item.id: answers[item.id] for item in definitions.items
                   if answers.get(item.id) is not None and definitions.applies(item, answers)}
        missing = definitions.missing(answers)
        if missing:
            raise _invalid_answers(
                [{"field": f"answers.{item_id}", "in": "body", "message": "réponse obligatoire"}
                 for item_id in missing],
                f"{len(missing)} required answers missing: {', '.join(missing)}.")
        row.status, row.answers, row.submitted_at = SUBMITTED, answers, now
        row.prefilled = [k for k in answers if k in prefill]
        row.questionnaire_version, row.updated_at, row.updated_by = definitions.version, now, principal.subject
        session.add(row)
        await add_events(session, database, [new_event(
            submitted_event(definitions, row), source=SOURCE, subject=f"cpts/{cpts_id}/questionnaire/{year}")])
        return _view(definitions, cpts_id, year, row, None)


def submitted_event(definitions: Questionnaire, row: SteeringQuestionnaire) -> QuestionnaireSubmitted:
    """The event for the ARS: every answer but the free-text ones (which may name people), kept aside."""
    items = definitions.by_id
    sent = [item_id for item_id in row.answers if not items[item_id].free_text]
    return QuestionnaireSubmitted(
        cpts_id=row.cpts_id, year=row.year, questionnaire_version=row.questionnaire_version,
        submitted_at=row.submitted_at,
        answers=[QuestionnaireAnswer(item_id=item_id, value=row.answers[item_id],
                                     prefilled=item_id in row.prefilled) for item_id in sent],
        withheld=[item_id for item_id in row.answers if items[item_id].free_text])


@router.get("/questionnaires", response_model=RegionalQuestionnaires,
            summary="ARS : les questionnaires soumis d'une année, côte à côte, pour toutes les CPTS de ses "
                    "départements (celles qui n'ont pas soumis apparaissent sans réponses).")
async def regional_questionnaires(principal: Regional, session: ReadSessionDep,
                                  year: Annotated[int, Query(ge=2019, le=2100, description="Année.")]
                                  ) -> RegionalQuestionnaires:
    territories = {cpts_id: territory for cpts_id, territory in (await cpts_territories(session)).items()
                   if any(principal.can_access_departement(d) for d in territory.get("departements", []))}
    submitted = {row.cpts_id: row for row in await questionnaires(
        session, cpts_ids=list(territories), year=year, status=SUBMITTED)} if territories else {}
    columns = []
    for cpts_id, territory in sorted(territories.items()):
        row = submitted.get(cpts_id)
        columns.append(CptsQuestionnaireColumn(
            cpts_id=cpts_id, name=territory.get("name"), departements=territory.get("departements", []),
            status=SUBMITTED if row is not None else "new",
            submitted_at=row.submitted_at if row is not None else None,
            answers=dict(row.answers) if row is not None else {}))
    return RegionalQuestionnaires(year=year, questionnaire_version=questionnaire().version, cpts=columns)


@router.get("/cpts/{cpts_id}/questionnaires", response_model=CptsQuestionnaireHistory,
            summary="Les questionnaires d'une CPTS au fil des années (l'ARS : les soumis seulement).")
async def questionnaire_history(cpts_id: CptsId, principal: Follower, session: ReadSessionDep
                                ) -> CptsQuestionnaireHistory:
    await authorize(principal, cpts_id, session)
    own = _own(principal, cpts_id)
    rows = await questionnaires(session, cpts_ids=[cpts_id], status=None if own else SUBMITTED)
    figures = await registry_figures(session, cpts_id) if any(r.status == DRAFT for r in rows) else None
    profile = await cpts_profile(session, cpts_id) or {}
    definitions = questionnaire()
    return CptsQuestionnaireHistory(cpts_id=cpts_id, name=profile.get("name"),
                                    years=[_view(definitions, cpts_id, r.year, r, figures) for r in rows])
