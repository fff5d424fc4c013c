"""Errors as `application/problem+json` (RFC 9457); validation errors name the field; oversize bodies get 413."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl

import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cpts_platform.db import database_unavailable
from cpts_platform.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


def text_error(value: str) -> str | None:
    """Why `value` cannot be stored as text (PostgreSQL refuses NUL, UTF-8 lone surrogates), or None."""
    if "\x00" in value:
        return "must not contain a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogate)"
    return None


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        if (error := text_error(value)) is not None:
            raise ValueError(error)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _check_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)


class RequestModel(BaseModel):
    """Base of every request body: an unknown field is a 422 naming it, not something silently dropped; so is
    text that no database can store."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        _check_text(value)
        return value


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raise from domain or API code to answer with a problem body."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.errors = errors
        self.headers = headers  # e.g. WWW-Authenticate on a 401, Retry-After on a 429


def problem_response(status: int, detail: str | None, *, request: Request | None = None, title: str | None = None,
                     type_: str = "about:blank", errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors,
    ).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _encodable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates of a JSON body) escaped, to be answered."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_name(loc: tuple | list) -> str:
    parts = [_encodable(str(p)) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def _echo(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return _encodable(value[:100]) if isinstance(value, str) else value
    return None


def install_problem_handlers(app: FastAPI, *, echo_invalid_values: bool = False,
                             domain_problems: Mapping[type[Exception], Callable[[Exception], ProblemError]]
                             | None = None) -> None:
    for exception_class, to_problem in (domain_problems or {}).items():
        def handler(request: Request, exc: Exception, to_problem=to_problem) -> JSONResponse:
            problem = to_problem(exc)
            return problem_response(problem.status, problem.detail, request=request, title=problem.title,
                                    type_=problem.type, errors=problem.errors, headers=problem.headers)

        app.add_exception_handler(exception_class, handler)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field names and messages; the submitted values only for services that hold no patient data.
        errors = []
        for e in exc.errors():
            error = {"field": _field_name(e.get("loc", ())), "in": str(e.get("loc", ("body",))[0]),
                     "message": _encodable(e.get("msg", "")), "type": e.get("type", "")}
            if echo_invalid_values and _echo(e.get("input")) is not None:
                error["value"] = _echo(e.get("input"))
            errors.append(error)
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem_response(422, f"Invalid request: {fields}", request=request,
                                title="Unprocessable Content", errors=errors)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, request=request, title=exc.title, type_=exc.type,
                                errors=exc.errors, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail) if exc.detail else None, request=request,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.TimeoutError)
    @app.exception_handler(sa_exc.OperationalError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # No connection free in time, the database away or locked: say so at once and let the client retry,
        # rather than hang or answer 500.
        log.warning("database_unavailable", route=request.scope.get("route") and request.scope["route"].path,
                    error_type=type(exc).__name__)
        return problem_response(503, "The database is busy or unavailable; retry in a moment.", request=request,
                                headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", route=request.scope.get("route") and request.scope["route"].path,
                  error_type=type(exc).__name__)
        return problem_response(500, "Internal error; it has been logged.", request=request)

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    async def _maybe_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database restarting or refusing connections surfaces as these too (a refused connection is an
        # OSError raised by the driver): 503 as above; anything else is unexpected.
        if database_unavailable(exc):
            return await _database_unavailable(request, exc)
        return await _unexpected(request, exc)

    document_problem_responses(app)


# Problems any operation may answer with besides those it documents itself: 413 from the body size limit,
# and, behind a bearer token, authentication, scope, unknown or conflicting resources, validation, rate
# limits and an unavailable database.
_ANY_OPERATION = {413: "Corps de requête trop grand."}
_AUTHENTICATED_OPERATION = {
    401: "Jeton absent ou invalide.",
    403: "Rôle ou périmètre (CPTS, département, professionnel) non autorisé.",
    404: "Ressource inconnue.",
    409: "Conflit avec l'état de la ressource.",
    422: "Requête invalide : le champ en cause est nommé dans `errors`.",
    429: "Trop de requêtes : réessayer après `Retry-After` secondes.",
    503: "Base de données occupée ou indisponible : réessayer après `Retry-After` secondes.",
}


def document_problem_responses(app: FastAPI) -> None:
    """Make the app's OpenAPI document tell the problems its handlers answer with: every 4xx/5xx response
    an operation documents without a body, FastAPI's default 422 and the problems any operation may give are
    `application/problem+json` bodies of the `Problem` schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_problem_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_problem_responses(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    body = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    default_422 = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            extra = _ANY_OPERATION | (_AUTHENTICATED_OPERATION if operation.get("security") else {})
            if "requestBody" in operation:
                extra |= {400: "Corps de requête illisible (JSON invalide)."}
            for status, description in extra.items():
                responses.setdefault(str(status), {"description": description})
            for status, response in responses.items():
                if not status.isdigit() or int(status) < 400:
                    continue
                if response.get("content") == default_422:
                    response["description"] = _AUTHENTICATED_OPERATION[422]
                if not response.get("content") or response["content"] == default_422:
                    response["content"] = {PROBLEM_JSON: dict(body[PROBLEM_JSON])}
                elif int(status) in extra:
                    # A route's own error format (FHIR OperationOutcome...), and the platform's problems.
                    response["content"].setdefault(PROBLEM_JSON, dict(body[PROBLEM_JSON]))
    if '"#/components/schemas/HTTPValidationError"' not in json.dumps(document):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


class TextParametersMiddleware:
    """Refuse with 422 a path or query parameter holding a NUL character (PostgreSQL can neither store nor
    compare it), naming the parameter, before any route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            errors = []
            if "\x00" in scope["path"]:
                errors.append({"field": "path", "in": "path", "message": "must not contain a NUL character",
                               "type": "invalid_text"})
            query = scope.get("query_string", b"").decode("latin-1")
            for name, value in parse_qsl(query, keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    errors.append({"field": name.replace("\x00", ""), "in": "query",
                                   "message": "must not contain a NUL character", "type": "invalid_text"})
            if errors:
                fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
                response = problem_response(422, f"Invalid request: {fields}", title="Unprocessable Content",
                                            errors=errors)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, f"Request body larger than {self.max_bytes} bytes.",
                                    title="Content Too Large")
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body reader lets it through instead of answering 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request body larger than {max_bytes} bytes.")
