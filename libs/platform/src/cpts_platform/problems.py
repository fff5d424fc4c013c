"""Errors as `application/problem+json` (RFC 9457); validation errors name the field; oversize bodies get 413."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Callable, Mapping

import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cpts_platform.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class RequestModel(BaseModel):
    """Base of every request body: an unknown field is a 422 naming it, not something silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.errors = errors


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


def _field_name(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def _echo(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value[:100] if isinstance(value, str) else value
    return None


def install_problem_handlers(app: FastAPI, *, echo_invalid_values: bool = False,
                             domain_problems: Mapping[type[Exception], Callable[[Exception], ProblemError]]
                             | None = None) -> None:
    for exception_class, to_problem in (domain_problems or {}).items():
        def handler(request: Request, exc: Exception, to_problem=to_problem) -> JSONResponse:
            problem = to_problem(exc)
            return problem_response(problem.status, problem.detail, request=request, title=problem.title,
                                    type_=problem.type, errors=problem.errors)

        app.add_exception_handler(exception_class, handler)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Field names and messages; the submitted values only for services that hold no patient data.
        errors = []
        for e in exc.errors():
            error = {"field": _field_name(e.get("loc", ())), "in": str(e.get("loc", ("body",))[0]),
                     "message": e.get("msg", ""), "type": e.get("type", "")}
            if echo_invalid_values and _echo(e.get("input")) is not None:
                error["value"] = _echo(e.get("input"))
            errors.append(error)
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem_response(422, f"Invalid request: {fields}", request=request,
                                title="Unprocessable Content", errors=errors)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, request=request, title=exc.title, type_=exc.type,
                                errors=exc.errors)

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
