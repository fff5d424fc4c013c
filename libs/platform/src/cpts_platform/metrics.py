"""Prometheus metrics of every service, all under the `cpts_` prefix."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUEST_DURATION = Histogram(
    "cpts_http_request_duration_seconds",
    "HTTP request duration by route template.",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_PUBLISHED = Counter(
    "cpts_events_published_total", "Events published to Kafka by the outbox relay.", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "cpts_events_consumed_total", "Events handled and committed by a consumer.", ["service", "topic"]
)
EVENTS_FAILED = Counter(
    "cpts_events_failed_total", "Event handling attempts that failed (retried or dead-lettered).",
    ["service", "topic"],
)
EVENTS_DEAD_LETTERED = Counter(
    "cpts_events_dead_lettered_total", "Events sent to the dead-letter topic.", ["service", "topic", "reason"]
)
OUTBOX_PENDING = Gauge("cpts_outbox_pending_events", "Outbox rows not yet published.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "cpts_outbox_oldest_pending_age_seconds", "Age of the oldest outbox row not yet published.", ["service"]
)
CONSUMER_LAG = Gauge(
    "cpts_consumer_lag", "Messages between a consumer's position and the partition end.",
    ["service", "topic", "partition"],
)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
