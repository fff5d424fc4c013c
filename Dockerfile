# syntax=docker/dockerfile:1

# One image for the whole platform: every service, the admin tasks and the `cpts` CLI.
# Pick what runs with the command, e.g. `cpts serve registry`, `cpts topics`, `cpts migrate --all`.

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install uv==0.13.8

WORKDIR /app

COPY pyproject.toml uv.lock ./
COPY libs/ libs/
COPY services/ services/

RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-packages

# Workspace packages are installed in editable mode: compile their sources here,
# the runtime user cannot write next to them.
RUN python -m compileall -q libs services


FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH="/app/.venv/bin:${PATH}" \
    CPTS_PROFILE=production \
    CPTS_HTTP_HOST=0.0.0.0

RUN groupadd --system --gid 10001 cpts \
    && useradd --system --uid 10001 --gid cpts --create-home --home-dir /home/cpts \
       --shell /usr/sbin/nologin cpts

WORKDIR /app

# The virtual environment points at the workspace sources under /app: both keep their paths.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/pyproject.toml /app/uv.lock /app/
COPY --from=builder /app/libs /app/libs
COPY --from=builder /app/services /app/services

USER cpts:cpts

# console, registry, snp-dispatch, patient-matching, indicators
EXPOSE 8000 8001 8002 8003 8004

# Generic liveness probe: succeeds when any platform service (or the console) answers /healthz here.
# docker-compose.yml replaces it per service with a readiness probe on the service's own port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\nfor port in (8000, 8001, 8002, 8003, 8004):\n    try:\n        urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=1)\n    except Exception:\n        continue\n    sys.exit(0)\nsys.exit(1)"]

CMD ["cpts", "--help"]
