"""`/api/<service>/<path>`: the services' APIs, reached from the browser with the user's own token.

The console adds no authority of its own: it forwards the method, the query, the body and the `Authorization`
header, and returns the service's answer as it is. The browser talks to one origin, so no CORS is needed."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request, Response

from cpts_console.settings import UPSTREAMS, ConsoleSettings
from cpts_platform.logging import get_logger
from cpts_platform.problems import problem_response

log = get_logger(__name__)

router = APIRouter(prefix="/api", include_in_schema=False)

# Request headers worth forwarding; everything else (cookies, host, proxies' headers) stays here.
FORWARDED_REQUEST_HEADERS = ("authorization", "content-type", "accept", "accept-language", "if-match",
                             "if-none-match", "prefer")
# Response headers passed back; hop-by-hop and length headers are recomputed by the server.
FORWARDED_RESPONSE_HEADERS = ("content-type", "content-disposition", "cache-control", "etag", "last-modified",
                              "location", "www-authenticate", "retry-after")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/{service}/{path:path}", methods=METHODS)
async def forward(service: str, path: str, request: Request) -> Response:
    settings: ConsoleSettings = request.app.state.settings
    if service not in UPSTREAMS:
        return problem_response(404, f"Unknown service {service!r}.", request=request)
    if ".." in path.split("/"):
        return problem_response(400, "Invalid path.", request=request)
    client: httpx.AsyncClient = request.app.state.http
    url = f"{settings.upstream_url(service)}/{path}"
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
    body = await request.body()
    try:
        upstream = await client.request(request.method, url, params=list(request.query_params.multi_items()),
                                        content=body or None, headers=headers)
    except httpx.TimeoutException:
        log.warning("upstream_timeout", upstream=service)
        return problem_response(504, f"The {service} service did not answer in time.", request=request,
                                title="Gateway Timeout")
    except httpx.HTTPError as exc:
        log.warning("upstream_unreachable", upstream=service, error_type=type(exc).__name__)
        return problem_response(502, f"The {service} service cannot be reached.", request=request,
                                title="Bad Gateway")
    passed = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARDED_RESPONSE_HEADERS}
    return Response(content=upstream.content, status_code=upstream.status_code, headers=passed)
