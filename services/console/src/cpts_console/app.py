"""The web console: the single-page app, a reverse proxy to the services' APIs, login, health and metrics.

It has no database, outbox or consumer: it is a plain FastAPI app with the platform's logging, problem
answers, body size limit and metrics, started by `cpts serve console` and by `cpts run`."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, AsyncIterator, Callable

import httpx
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cpts_console import login, proxy
from cpts_console.settings import UPSTREAMS, ConsoleSettings
from cpts_geo import communes
from cpts_platform.logging import configure_logging, get_logger
from cpts_platform.metrics import HTTP_REQUEST_DURATION, metrics_endpoint
from cpts_platform.problems import BodySizeLimitMiddleware, ProblemError, install_problem_handlers
from cpts_platform.ratelimit import rate_limiter_from

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"

# Everything the page loads comes from this origin: no CDN, no inline script, no tile server.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'self'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class _ConsoleMiddleware:
    """Security headers on every answer, one log line and one histogram observation per request (by route
    template: never a raw path, which may carry an identifier)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.decode().lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/")
                                                        else "unmatched")
            if scope["path"] not in ("/metrics", "/healthz") and not scope["path"].startswith("/static/"):
                duration = time.perf_counter() - started
                labels = ("console", scope["method"], template, str(status))
                HTTP_REQUEST_DURATION.labels(*labels).observe(duration)
                log.info("http_request", method=scope["method"], route=template, status=status,
                         duration_ms=round(duration * 1000, 2))


def _health_router() -> APIRouter:
    router = APIRouter(tags=["santé"])

    @router.get("/healthz", summary="Le processus répond (liveness).")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz", summary="L'application est servie ; l'état des services joints est indiqué.")
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the app's files are there. The services' own health is reported, not required: the
        console stays up to tell its users which service is away."""
        settings: ConsoleSettings = request.app.state.settings
        client: httpx.AsyncClient = request.app.state.http

        async def probe(name: str) -> str:
            try:
                answer = await client.get(f"{settings.upstream_url(name)}/healthz", timeout=1.0)
                return "ok" if answer.status_code == 200 else f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                return f"unreachable ({type(exc).__name__})"

        names = list(UPSTREAMS)
        upstreams = dict(zip(names, await asyncio.gather(*(probe(n) for n in names)), strict=True))
        ready = (STATIC / "index.html").is_file()
        return JSONResponse({"status": "ready" if ready else "not ready",
                             "checks": {"static": "ok" if ready else "missing"}, "upstreams": upstreams},
                            status_code=200 if ready else 503)

    router.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return router


def _pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # `/rendez-vous?creneau=ID` is the booking link snp-dispatch writes in every FHIR Slot's comment.
    for path in ("/", "/rendez-vous"):
        router.add_api_route(path, index, methods=["GET"])
    return router


def _geo_router() -> APIRouter:
    router = APIRouter(prefix="/geo", tags=["référentiel"])

    @router.get("/communes", summary="Nom, population et point (WGS84) de communes, pour la carte.",
                responses={404: {"description": "Commune inconnue."}})
    async def commune_points(
            insee: Annotated[list[Annotated[str, Field(max_length=5)]], Query(max_length=300)]) -> list[dict]:
        """Public reference data (INSEE, IGN): served from the shared table, no token needed."""
        directory = communes()
        found = [directory.get(code) for code in insee]
        missing = [code for code, c in zip(insee, found, strict=True) if c is None]
        if missing:
            raise ProblemError(404, f"Unknown commune(s): {', '.join(missing[:10])}.")
        return [{"insee": c.insee, "name": c.name, "departement": c.departement, "population": c.population,
                 "lat": c.lat, "lon": c.lon, "postcodes": list(c.postcodes)} for c in found if c is not None]

    return router


def create_app(settings: ConsoleSettings | None = None, *,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The console app; `transport` replaces the network in tests (upstream services, identity provider)."""
    settings = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service="console", level=settings.log_level)
        async with httpx.AsyncClient(timeout=settings.proxy_timeout_seconds, follow_redirects=False,
                                     transport=transport) as client:
            app.state.http = client
            log.info("service_started", port=settings.http_port, profile=settings.profile)
            yield
        log.info("service_stopped")

    app = FastAPI(title="Console CPTS / SAS", version="0.1.0", lifespan=lifespan,
                  description="Application web des régulateurs, secrétaires, professionnels, coordinateurs "
                              "et de l'ARS ; relais vers les API des services avec le jeton de "
                              "l'utilisateur.")
    app.state.settings = settings
    app.state.rate_limiter = rate_limiter_from(settings, service="console")
    install_problem_handlers(app)
    app.include_router(_health_router())
    app.include_router(login.router)
    app.include_router(_geo_router())
    app.include_router(proxy.router)
    app.include_router(_pages_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(_ConsoleMiddleware)
    return app


@dataclass(frozen=True)
class WebApp:
    """A process of the platform without a database or events of its own (entry point `cpts.web_apps`)."""

    name: str
    title: str
    settings_class: type[ConsoleSettings]
    create_app: Callable[[ConsoleSettings], FastAPI]


web_app = WebApp(name="console", title="Console web", settings_class=ConsoleSettings, create_app=create_app)
