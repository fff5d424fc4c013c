"""Checks that the production stack (docker-compose.yml and deploy/) is wired as the platform expects."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARD = DEPLOY / "grafana" / "dashboards" / "cpts-platform.json"
POSTGRES_INIT = DEPLOY / "postgres"

SERVICES = {
    "registry": 8001,
    "snp-dispatch": 8002,
    "patient-matching": 8003,
    "indicators": 8004,
}
INIT_JOB = "init"


def env_prefix(service: str) -> str:
    return "CPTS_" + service.upper().replace("-", "_")


def database_name(service: str) -> str:
    return "cpts_" + service.replace("-", "_")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def service(compose: dict, name: str) -> dict:
    services = compose.get("services") or {}
    assert name in services, f"docker-compose.yml has no `{name}` service"
    return services[name]


def environment(definition: dict) -> dict[str, str]:
    env = definition.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(definition: dict) -> list[str]:
    cmd = definition.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_on(definition: dict) -> dict[str, str]:
    deps = definition.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def container_ports(definition: dict) -> set[int]:
    """Container ports published on the host, from the short or the long port syntax."""
    published = set()
    for port in definition.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") not in (None, ""):
                published.add(int(port["target"]))
        else:
            parts = str(port).split("/")[0].split(":")
            if len(parts) >= 2:
                published.add(int(parts[-1]))
    return published


def healthcheck_test(definition: dict) -> str:
    check = definition.get("healthcheck") or {}
    assert not check.get("disable"), "healthcheck is disabled"
    test = check.get("test")
    assert test, "healthcheck has no test"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), f"unexpected healthcheck form {test[0]!r}"
        return " ".join(str(part) for part in test[1:])
    return str(test)


def test_compose_declares_the_platform_services_and_their_infrastructure(compose):
    names = set(compose.get("services") or {})
    expected = set(SERVICES) | {INIT_JOB, "kafka", "postgres", "prometheus", "grafana"}
    assert expected <= names, f"missing services: {sorted(expected - names)}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_healthcheck_and_its_port(compose, name):
    definition = service(compose, name)
    port = SERVICES[name]

    test = healthcheck_test(definition)
    assert f":{port}/" in test, f"{name} healthcheck does not probe port {port}: {test}"
    assert "/readyz" in test or "/healthz" in test, f"{name} healthcheck probes no health endpoint"

    assert port in container_ports(definition), f"{name} does not publish port {port}"
    assert environment(definition).get(f"{env_prefix(name)}_HTTP_PORT") == str(port)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_started_with_cpts_serve(compose, name):
    assert command(service(compose, name)) == ["cpts", "serve", name]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_reaches_kafka_and_its_own_postgresql_database(compose, name):
    env = environment(service(compose, name))

    assert env.get("CPTS_KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092"

    url = env.get(f"{env_prefix(name)}_DATABASE_URL", "")
    assert url.startswith("postgresql"), f"{name} database URL is not PostgreSQL: {url!r}"
    assert "@postgres:5432/" in url
    assert url.rsplit("/", 1)[-1] == database_name(name)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_the_production_profile(compose, name):
    env = environment(service(compose, name))
    assert env.get("CPTS_PROFILE") == "production"
    assert env.get("CPTS_HTTP_HOST") == "0.0.0.0"
    for variable in ("CPTS_AUTH_ISSUER", "CPTS_AUTH_AUDIENCE", "CPTS_AUTH_JWKS_URL"):
        assert env.get(variable), f"{name} has no {variable}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_waits_for_the_init_job_to_complete(compose, name):
    assert depends_on(service(compose, name)).get(INIT_JOB) == "service_completed_successfully"


def test_init_job_creates_topics_and_migrates_once_kafka_and_postgres_are_healthy(compose):
    init = service(compose, INIT_JOB)
    script = " ".join(command(init))
    assert "cpts topics" in script
    assert "cpts migrate --all" in script
    assert script.index("cpts topics") < script.index("cpts migrate --all")

    deps = depends_on(init)
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("postgres") == "service_healthy"

    env = environment(init)
    assert env.get("CPTS_KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092"
    for name in SERVICES:
        url = env.get(f"{env_prefix(name)}_DATABASE_URL", "")
        assert url.startswith("postgresql"), f"init cannot migrate {name}: no database URL"


def test_platform_containers_share_the_image_built_from_the_dockerfile(compose):
    images = {service(compose, name).get("image") for name in [*SERVICES, INIT_JOB]}
    assert len(images) == 1, f"services use different images: {images}"
    for name in [*SERVICES, INIT_JOB]:
        build = service(compose, name).get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context == ".", f"{name} is not built from the repository root"


def test_kafka_and_postgres_have_healthchecks(compose):
    assert "kafka" in healthcheck_test(service(compose, "kafka"))
    assert "pg_isready" in healthcheck_test(service(compose, "postgres"))


def test_passwords_come_from_the_environment(compose):
    for name in [*SERVICES, INIT_JOB]:
        for key, value in environment(service(compose, name)).items():
            if key.endswith("_DATABASE_URL"):
                password = value.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
                assert password.startswith("${"), f"{name} {key} has a literal password"
    postgres = environment(service(compose, "postgres"))
    assert postgres["POSTGRES_PASSWORD"].startswith("${")
    assert environment(service(compose, "grafana"))["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")


def test_postgres_init_script_creates_every_service_database(compose):
    scripts = "\n".join(
        path.read_text(encoding="utf-8") for path in sorted(POSTGRES_INIT.iterdir()) if path.is_file()
    )
    assert "CREATE ROLE" in scripts, "the init script does not create the cpts role"
    for name in SERVICES:
        assert database_name(name) in scripts, f"no database created for {name}"

    mounts = [str(volume) for volume in service(compose, "postgres").get("volumes") or []]
    assert any("deploy/postgres" in mount and "/docker-entrypoint-initdb.d" in mount for mount in mounts)


def scrape_targets(job: dict) -> set[str]:
    targets = set()
    for static in job.get("static_configs") or []:
        targets.update(static.get("targets") or [])
    for dns in job.get("dns_sd_configs") or []:
        targets.update(f"{name}:{dns.get('port')}" for name in dns.get("names") or [])
    return targets


def test_prometheus_scrapes_every_service_metrics_endpoint(compose):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = config.get("scrape_configs") or []
    for name, port in SERVICES.items():
        scraping = [job for job in jobs if f"{name}:{port}" in scrape_targets(job)]
        assert scraping, f"Prometheus does not scrape {name}:{port}"
        assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in scraping)

    mounts = [str(volume) for volume in service(compose, "prometheus").get("volumes") or []]
    assert any("deploy/prometheus/prometheus.yml" in mount for mount in mounts)


def dashboard_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels") or [])


def test_grafana_dashboard_queries_only_cpts_metrics():
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    expressions = [
        (panel.get("title"), target["expr"])
        for panel in dashboard_panels(dashboard.get("panels") or [])
        for target in panel.get("targets") or []
        if "expr" in target
    ]
    assert expressions, "the dashboard has no Prometheus query"
    for title, expr in expressions:
        assert re.search(r"\bcpts_[a-z0-9_]+", expr), f"panel {title!r} queries no cpts_ metric: {expr}"


def test_grafana_dashboard_covers_http_events_outbox_and_consumer_lag():
    text = " ".join(
        target.get("expr", "")
        for panel in dashboard_panels(json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))["panels"])
        for target in panel.get("targets") or []
    )
    for metric in (
        "cpts_http_request_duration_seconds_count",
        "cpts_http_request_duration_seconds_bucket",
        "cpts_events_published_total",
        "cpts_events_consumed_total",
        "cpts_events_failed_total",
        "cpts_events_dead_lettered_total",
        "cpts_outbox_pending_events",
        "cpts_outbox_oldest_pending_age_seconds",
        "cpts_consumer_lag",
    ):
        assert metric in text, f"the dashboard does not chart {metric}"
    assert "histogram_quantile(0.95" in text


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose):
    datasources = DEPLOY / "grafana" / "provisioning" / "datasources"
    providers = DEPLOY / "grafana" / "provisioning" / "dashboards"
    sources = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(datasources.glob("*.y*ml"))]
    assert any(
        source.get("type") == "prometheus" and "prometheus:9090" in source.get("url", "")
        for config in sources
        for source in config.get("datasources") or []
    )
    assert any(
        provider.get("options", {}).get("path")
        for path in sorted(providers.glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text(encoding="utf-8")).get("providers") or []
    )
    mounts = " ".join(str(volume) for volume in service(compose, "grafana").get("volumes") or [])
    assert "deploy/grafana/provisioning" in mounts
    assert "deploy/grafana/dashboards" in mounts


def test_dockerfile_is_multi_stage_and_runs_as_non_root():
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    from_lines = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(from_lines) >= 2, "the Dockerfile is not multi-stage"
    assert any(line.upper().startswith("USER ") and "root" not in line.lower() for line in lines)
    assert any(line.upper().startswith("HEALTHCHECK ") for line in lines)
    assert any("uv sync --frozen --no-dev --all-packages" in line for line in lines)
