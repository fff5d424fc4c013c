"""Rate limits of the expensive or sensitive endpoints (searches, logins), with the `limits` library.

A route opts in with a dependency: `dependencies=[Depends(rate_limited("search"))]` counts the calls of the
token's subject (after the token is verified: a forged token never reaches the counters), and
`rate_limited("login", by="ip")` those of the client address, for endpoints without a token. The limits are
settings (`rate_limit_<name>`, e.g. `"10/second;300/minute"`: every one of them must hold); a call over a
limit is answered 429 problem+json with `Retry-After`, and counted in `cpts_rate_limited_requests_total` (by
service and limit name: never the subject nor the address).

Counters live in the process by default (`memory://`): with several replicas, each counts its own share.
`rate_limit_storage_uri` points them at a shared store instead (`redis://host:6379`, `memcached://host:11211`,
with the matching async client installed: coredis, emcache). If that store fails, calls are let through
(logged): the limits protect the service, they must not take it down."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Annotated, Literal, Mapping

from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import Counter
from pydantic_settings import BaseSettings

from cpts_platform.auth import Principal, current_principal
from cpts_platform.logging import get_logger
from cpts_platform.problems import ProblemError

log = get_logger(__name__)

RATE_LIMITED = Counter(
    "cpts_rate_limited_requests_total", "Requests refused with 429 by a rate limit.", ["service", "limit"]
)


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    """Named limits (`{"search": "10/second;300/minute"}`) over one storage; `check(name, key)` counts a
    call."""

    def __init__(self, limits: Mapping[str, str], *, service: str = "service", storage_uri: str = "memory://",
                 enabled: bool = True) -> None:
        self.service = service
        self.enabled = enabled
        self._limits: dict[str, list[RateLimitItem]] = {}
        for name, text in limits.items():
            try:
                self._limits[name] = parse_many(text)
            except ValueError as exc:
                raise ValueError(f"rate_limit_{name}: {text!r} is not a rate limit such as '30/minute'"
                                 ) from exc
        self._strategy = MovingWindowRateLimiter(storage_from_string(_async_uri(storage_uri)))

    def limits(self, name: str) -> list[RateLimitItem]:
        return self._limits.get(name, [])

    async def check(self, name: str, key: str) -> None:
        """Count one call of `key` against the limit `name`; 429 when one of its limits is exhausted."""
        items = self._limits.get(name)
        if not self.enabled or not items:
            return
        # The key is hashed: the storage (possibly a shared Redis) never holds a subject or an address.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            for item in items:
                if not await self._strategy.test(item, self.service, name, digest):
                    await self._refuse(name, item, digest)
            for item in items:
                if not await self._strategy.hit(item, self.service, name, digest):
                    await self._refuse(name, item, digest)
        except ProblemError:
            raise
        except Exception as exc:
            log.warning("rate_limit_storage_failed", limit=name, error_type=type(exc).__name__)

    async def _refuse(self, name: str, item: RateLimitItem, digest: str) -> None:
        stats = await self._strategy.get_window_stats(item, self.service, name, digest)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        RATE_LIMITED.labels(self.service, name).inc()
        raise ProblemError(429, f"Too many requests ({name}: at most {item}); retry in {retry_after} s.",
                           title="Too Many Requests", headers={"Retry-After": str(retry_after)})


_SWITCHES = ("rate_limit_enabled", "rate_limit_storage_uri")


def rate_limiter_from(settings: BaseSettings, *, service: str) -> RateLimiter:
    """The limiter of an app from its settings: `rate_limit_enabled`, `rate_limit_storage_uri` and every
    `rate_limit_<name>` field, a limit named `<name>`."""
    limits = {field[len("rate_limit_"):]: getattr(settings, field) for field in type(settings).model_fields
              if field.startswith("rate_limit_") and field not in _SWITCHES}
    return RateLimiter(limits, service=service, storage_uri=settings.rate_limit_storage_uri,
                       enabled=settings.rate_limit_enabled)


def client_address(request: Request) -> str:
    """The caller's address as the server sees it: behind a reverse proxy, `FORWARDED_ALLOW_IPS` must name
    the proxy for uvicorn to take the user's address from `X-Forwarded-For`."""
    return request.client.host if request.client else "unknown"


async def _limiter_check(request: Request, name: str, key: str) -> None:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        await limiter.check(name, key)


def rate_limited(name: str, *, by: Literal["subject", "ip"] = "subject"):
    """Dependency counting the call against the limit `name`, per token subject (the token is verified
    first: 401 before any count) or per client address."""
    if by == "subject":
        async def per_subject(request: Request,
                              principal: Annotated[Principal, Depends(current_principal)]) -> None:
            await _limiter_check(request, name, f"sub:{principal.subject}")

        return per_subject

    async def per_address(request: Request) -> None:
        await _limiter_check(request, name, f"ip:{client_address(request)}")

    return per_address
