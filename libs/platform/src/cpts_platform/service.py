"""One way to assemble a service: settings, database, outbox relay, consumers, HTTP app, health, metrics."""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, AsyncIterator, Callable, Coroutine, Mapping

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cpts_platform.auth import TokenVerifier
from cpts_platform.consumer import EventConsumer, Handler
from cpts_platform.db import Database, PlatformTables
from cpts_platform.kafka import broker_reachable, ensure_topics, new_producer, platform_topics
from cpts_platform.logging import configure_logging, get_logger
from cpts_platform.metrics import HTTP_REQUEST_DURATION, metrics_endpoint
from cpts_platform.migrations import upgrade
from cpts_platform.outbox import OutboxRelay
from cpts_platform.problems import (
    BodySizeLimitMiddleware,
    ProblemError,
    TextParametersMiddleware,
    install_problem_handlers,
)
from cpts_platform.ratelimit import rate_limiter_from
from cpts_platform.settings import ServiceSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class Subscription:
    """A consumer group of this service: the topics it reads and a handler per event type."""

    group_id: str
    topics: list[str]
    handlers: Mapping[str, Handler]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    description: str
    settings_class: type[ServiceSettings]
    metadata: sa.MetaData
    tables: PlatformTables
    migrations: Path
    routers: list[APIRouter] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    version: str = "0.1.0"
    # Only a service that holds no patient data may echo invalid values back in its 422 answers.
    echo_invalid_values: bool = False
    # Domain exceptions and the problem each one answers with, wherever a route lets it through.
    problems: Mapping[type[Exception], Callable[[Exception], ProblemError]] = field(default_factory=dict)
    # Loads what the service keeps for its whole life (reference tables), at startup rather than on a first
    # request, so that it is part of the heap frozen after startup (`create_app(freeze_heap=True)`).
    warm_up: Callable[[], None] | None = None


class Runtime:
    """What a running service holds: reached from routes through `request.app.state.runtime`."""

    def __init__(self, definition: ServiceDefinition, settings: ServiceSettings) -> None:
        self.definition = definition
        self.settings = settings
        self.database = Database(settings.database_url, definition.tables, pool_size=settings.database_pool_size)
        self.producer: AIOKafkaProducer = new_producer(
            settings, client_id=settings.kafka_client_id or definition.name
        )
        self.relay = OutboxRelay(
            service=definition.name, database=self.database, producer=self.producer,
            batch_size=settings.outbox_batch_size, poll_interval=settings.outbox_poll_interval_seconds,
            retention=timedelta(days=settings.outbox_retention_days), topic_prefix=settings.kafka_topic_prefix,
            processed_retention=timedelta(days=settings.consumer_dedup_retention_days)
            if settings.consumer_dedup_retention_days else None,
        )
        self.consumers = [
            EventConsumer(
                service=definition.name, group_id=settings.kafka_topic_prefix + s.group_id,
                topics_=[settings.kafka_topic_prefix + t for t in s.topics], handlers=s.handlers,
                database=self.database, producer=self.producer,
                bootstrap_servers=settings, batch_size=settings.consumer_batch_size,
                max_attempts=settings.consumer_max_attempts,
                session_timeout_ms=settings.consumer_session_timeout_ms,
                fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
            )
            for s in definition.subscriptions
        ]
        self.kafka_started = False
        self._connector: asyncio.Task | None = None
        self._broker_check: tuple[float, bool] = (0.0, False)

    async def start(self, *, migrate: bool) -> None:
        if migrate:
            await upgrade(self.database, self.definition.migrations, self.definition.metadata)
        self._connector = asyncio.create_task(self._connect_kafka(), name="kafka-connector")

    async def _connect_kafka(self) -> None:
        """Start the Kafka clients, retrying while the broker is away; HTTP serves meanwhile."""
        backoff = 0.5
        while True:
            try:
                if self.settings.profile != "production":
                    # Production creates topics once, in its init job (`cpts topics`).
                    await ensure_topics(
                        self.settings,
                        [self.settings.kafka_topic_prefix + t for t in platform_topics()],
                        partitions=self.settings.topic_partitions,
                        replication_factor=self.settings.topic_replication_factor,
                    )
                await self.producer.start()
                break
            except Exception as exc:
                log.warning("broker_unreachable", error_type=type(exc).__name__, backoff_seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self.kafka_started = True
        self.relay.start()
        for consumer in self.consumers:
            while True:
                try:
                    await consumer.start()
                    break
                except Exception as exc:
                    log.warning("consumer_start_failed", group=consumer.group_id, error_type=type(exc).__name__)
                    await asyncio.sleep(backoff)

    async def stop(self) -> None:
        if self._connector and not self._connector.done():
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        for consumer in self.consumers:
            await consumer.stop()
        await self.relay.stop()
        if self.kafka_started:
            await self.producer.stop()
        await self.database.dispose()

    async def broker_ok(self) -> bool:
        checked_at, ok = self._broker_check
        if time.monotonic() - checked_at < 1.0:
            return ok
        ok = self.kafka_started and await broker_reachable(self.producer)
        self._broker_check = (time.monotonic(), ok)
        return ok

    async def readiness(self) -> dict[str, str]:
        async def database() -> str:
            try:
                await asyncio.wait_for(self.database.ping(), 2.0)
                return "ok"
            except Exception as exc:
                return f"unreachable ({type(exc).__name__})"

        # Concurrently: a probe waits for the slower check (at most 2 s each), not for their sum.
        database_state, broker_ok = await asyncio.gather(database(), self.broker_ok())
        checks: dict[str, str] = {"database": database_state, "broker": "ok" if broker_ok else "unreachable"}
        for consumer in self.consumers:
            checks[f"consumer:{consumer.group_id}"] = "ok" if consumer.ready else "not assigned"
        return checks


def _health_router() -> APIRouter:
    router = APIRouter(tags=["santé"])

    @router.get("/healthz", summary="Le processus répond (liveness).")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz", summary="Base de données, broker et consommateurs prêts (readiness).",
                responses={503: {"description": "Une dépendance n'est pas prête.",
                                 "content": {"application/json": {}}}})
    async def readyz(request: Request) -> JSONResponse:
        checks = await request.app.state.runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @router.get("/readyz/traffic",
                summary="La base de données répond : l'API peut servir, même sans broker (readiness du trafic).",
                description="Les mêmes vérifications que `/readyz`, mais seule la base de données décide : "
                            "sans broker, les lectures et les écritures (par l'outbox) restent possibles.",
                responses={503: {"description": "La base de données ne répond pas.",
                                 "content": {"application/json": {}}}})
    async def readyz_traffic(request: Request) -> JSONResponse:
        checks = await request.app.state.runtime.readiness()
        ready = checks["database"] == "ok"
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    router.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return router


class _RequestLogMiddleware:
    """One log line and one histogram observation per request, by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

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
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            duration = time.perf_counter() - started
            if scope["path"] not in ("/metrics", "/healthz"):
                HTTP_REQUEST_DURATION.labels(self.service, scope["method"], template, str(status)).observe(duration)
                log.info("http_request", method=scope["method"], route=template, status=status,
                         duration_ms=round(duration * 1000, 2))


# A process serving one app collects its youngest objects every this many allocations (Python's default: 700):
# a batch of events or a request allocates tens of thousands of short-lived objects, most freed before then.
YOUNG_COLLECTION_THRESHOLD = 10_000


def create_app(definition: ServiceDefinition, settings: ServiceSettings | None = None, *,
               migrate: bool | None = None, freeze_heap: bool = False) -> FastAPI:
    """The service's ASGI app. `freeze_heap` (a process serving this one app: `cpts serve`): once started, what
    the process holds for its life (modules, reference tables, app) leaves the garbage collector's view, so that
    its full collections, which a request's thousands of small objects trigger now and then, no longer walk
    hundreds of thousands of objects (pauses of tens of milliseconds in the middle of a request); and its youngest
    generation is collected less often (`YOUNG_COLLECTION_THRESHOLD`)."""
    settings = settings or definition.settings_class()
    should_migrate = settings.profile != "production" if migrate is None else migrate

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service=definition.name, level=settings.log_level)
        runtime = Runtime(definition, settings)
        app.state.runtime = runtime
        app.state.token_verifier = TokenVerifier.from_settings(settings)
        await runtime.start(migrate=should_migrate)
        if definition.warm_up is not None:
            definition.warm_up()
        if freeze_heap:
            gc.collect()
            gc.freeze()
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        log.info("service_started", port=settings.http_port, database=runtime.database.dialect,
                 frozen_objects=gc.get_freeze_count())
        try:
            yield
        finally:
            await runtime.stop()
            log.info("service_stopped")

    app = FastAPI(title=definition.title, description=definition.description, version=definition.version,
                  lifespan=lifespan)
    app.state.rate_limiter = rate_limiter_from(settings, service=definition.name)
    install_problem_handlers(app, echo_invalid_values=definition.echo_invalid_values,
                             domain_problems=definition.problems)
    app.include_router(_health_router())
    for router in definition.routers:
        app.include_router(router)
    app.add_middleware(TextParametersMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(_RequestLogMiddleware, service=definition.name)
    return app


def background_task(name: str, start: Callable[[Runtime], Coroutine | None]) -> APIRouter:
    """A router whose lifespan runs a service's own background work next to its consumers: `start(runtime)`
    gives the coroutine (or None when the work is switched off), which runs as a task inside the service's
    lifespan (the runtime exists) and is cancelled, and awaited, before the runtime stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        work = start(app.state.runtime)
        task = asyncio.create_task(work, name=name) if work is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return APIRouter(lifespan=lifespan)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_database(request: Request) -> Database:
    return request.app.state.runtime.database


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
DatabaseDep = Annotated[Database, Depends(get_database)]


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.runtime.database.sessions() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(read_session)]
