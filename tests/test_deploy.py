"""Static checks of the production descriptions: docker-compose.yml and the Kubernetes manifests of deploy/k8s.

They are checked against the code itself: the routes the apps really serve, the environment variables the
settings classes really read (and their production rules), the port each service listens on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cpts_cli.services import load_services, load_web_apps
from cpts_platform.service import create_app
from cpts_platform.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

PLATFORM = ["registry", "snp-dispatch", "patient-matching", "indicators"]
CONSOLE = "console"
APPS = [*PLATFORM, CONSOLE]
# Compose containers that run to completion: no healthcheck, the services wait for their success.
ONE_SHOT = {"init"}
# Variables read by the libraries rather than by the settings classes (asyncpg: the PostgreSQL server's CA).
LIBRARY_VARIABLES = {"PGSSLROOTCERT"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|_KEY$|DATABASE_URL", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")

# Values given to the compose file's required variables when its settings are validated.
COMPOSE_EXAMPLE_ENV = {
    "CPTS_AUTH_ISSUER": "https://auth.cpts.example.org/realms/cpts",
    "CPTS_AUTH_JWKS_URL": "https://auth.cpts.example.org/realms/cpts/protocol/openid-connect/certs",
    "CPTS_CONSOLE_OIDC_ISSUER": "https://auth.cpts.example.org/realms/cpts",
    "CPTS_CONSOLE_OIDC_CLIENT_ID": "cpts-console",
    "CPTS_CONSOLE_PUBLIC_URL": "https://console.cpts.example.org",
}
# What the operators' Secrets hold, for the settings validation of the manifests.
EXAMPLE_SECRET_VALUES = {
    "url": "postgresql+asyncpg://cpts:example@postgres.example.org:5432/cpts?ssl=verify-full",
    "client-secret": "example",
    "password": "example",
}


# --- the code: apps, routes, settings --------------------------------------------------------------------


@cache
def settings_class(app: str) -> type:
    web_apps = load_web_apps()
    if app in web_apps:
        return web_apps[app].settings_class
    return load_services()[app].settings_class


@cache
def served_paths(app: str) -> frozenset[str]:
    """The paths the app really serves (its OpenAPI document, built from its routes)."""
    web_apps = load_web_apps()
    if app in web_apps:
        definition = web_apps[app]
        asgi = definition.create_app(definition.settings_class())
    else:
        asgi = create_app(load_services()[app])
    return frozenset(asgi.openapi()["paths"])


def settings_variables(cls: type) -> set[str]:
    """Environment variables a settings class reads: its own prefix, then the common `CPTS_`."""
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{p}{field}".upper() for field in cls.model_fields for p in (prefix, "CPTS_")}


def settings_classes_of(command: list[str]) -> list[type]:
    """The settings classes a `cpts` command line reads (`sh -c "a && b"` included)."""
    if command[:2] == ["sh", "-c"]:
        return [cls for part in command[2].split("&&") for cls in settings_classes_of(shlex.split(part))]
    assert command[0] == "cpts", f"not a cpts command: {command}"
    if command[1] == "serve":
        return [settings_class(command[2])]
    if command[1] == "topics":
        return [KafkaSettings]
    if command[1] == "migrate":
        assert "--all" in command, command
        return [settings_class(name) for name in PLATFORM]
    raise AssertionError(f"unknown cpts command {command}")


def validated(cls: type, env: dict[str, str], monkeypatch) -> Any:
    """The settings the class builds from exactly `env` (production rules included)."""
    for name in list(os.environ):
        if name.upper().startswith(("CPTS_", "PG")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def test_every_app_serves_the_probe_endpoints():
    for app in APPS:
        assert {"/healthz", "/readyz"} <= served_paths(app), f"{app} does not serve /healthz and /readyz"


def test_every_yaml_file_of_the_deployment_parses():
    files = [COMPOSE_FILE, *sorted(DEPLOY.rglob("*.yml")), *sorted(DEPLOY.rglob("*.yaml"))]
    assert len(files) > 10
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert any(documents), f"{path.relative_to(ROOT)} is empty"


# --- docker-compose.yml ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_env(definition: dict) -> dict[str, str]:
    env = definition.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def compose_command(definition: dict) -> list[str]:
    command = definition.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` with the variables `given`."""

    def one(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if given.get(name):
            return given[name]
        if operator in (":-", "-"):
            return argument
        raise AssertionError(f"${{{name}}} has no default and no example value")

    return INTERPOLATION.sub(one, value)


def platform_containers(compose: dict) -> dict[str, dict]:
    return {name: definition for name, definition in compose["services"].items()
            if compose_command(definition)[:1] == ["cpts"] or name in ONE_SHOT}


def test_compose_runs_the_console_on_port_8000_next_to_the_services(compose):
    console = compose["services"].get(CONSOLE)
    assert console, "docker-compose.yml has no console"
    assert compose_command(console) == ["cpts", "serve", CONSOLE]
    assert console["image"] == compose["services"]["registry"]["image"]
    env = compose_env(console)
    assert env["CPTS_PROFILE"] == "production"
    assert env["CPTS_CONSOLE_HTTP_PORT"] == "8000"
    assert any(port["target"] == 8000 for port in console["ports"])
    check = " ".join(console["healthcheck"]["test"])
    assert ":8000/readyz" in check
    ports = {"registry": 8001, "snp_dispatch": 8002, "patient_matching": 8003, "indicators": 8004}
    for upstream, port in ports.items():
        service = upstream.replace("_", "-")
        assert env[f"CPTS_CONSOLE_{upstream.upper()}_URL"] == f"http://{service}:{port}"
        assert service in console.get("depends_on", {}), f"the console does not wait for {service}"
    for setting in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI"):
        assert f"CPTS_CONSOLE_OIDC_{setting}" in env


def test_compose_long_running_containers_have_a_healthcheck(compose):
    for name, definition in compose["services"].items():
        if name in ONE_SHOT:
            continue
        check = definition.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_compose_images_are_pinned(compose):
    for name, definition in compose["services"].items():
        image = interpolate(definition["image"], {})
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_compose_publishes_ports_on_the_loopback_only_by_default(compose):
    for name, definition in compose["services"].items():
        for port in definition.get("ports") or []:
            if isinstance(port, dict):
                address = interpolate(str(port.get("host_ip", "")), {})
            else:
                address = str(port).split(":")[0] if str(port).count(":") >= 2 else ""
            assert address == "127.0.0.1", f"{name} publishes {port} on {address or 'every address'}"


def test_compose_holds_no_secret_literal(compose):
    for name, definition in compose["services"].items():
        for key, value in compose_env(definition).items():
            if not SECRET_NAME.search(key):
                continue
            if key.endswith("DATABASE_URL"):
                value = value.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            assert value == "" or value.startswith("${"), f"{name}: {key} has a literal value"


def test_compose_variables_are_read_by_the_settings_and_pass_the_production_rules(compose, monkeypatch):
    for name, definition in platform_containers(compose).items():
        classes = settings_classes_of(compose_command(definition))
        env = {key: interpolate(value, COMPOSE_EXAMPLE_ENV) for key, value in compose_env(definition).items()}
        readable = set().union(*(settings_variables(cls) for cls in classes))
        unknown = sorted(set(env) - readable)
        assert not unknown, f"{name}: no setting reads {unknown}"
        for cls in classes:
            settings = validated(cls, env, monkeypatch)
            if getattr(settings, "profile", "production") != "production":
                pytest.fail(f"{name} does not run the production profile")


def test_compose_ports_are_the_ports_the_apps_listen_on(compose, monkeypatch):
    for name in APPS:
        definition = compose["services"][name]
        env = {key: interpolate(value, COMPOSE_EXAMPLE_ENV) for key, value in compose_env(definition).items()}
        port = validated(settings_class(name), env, monkeypatch).http_port
        assert [p["target"] for p in definition["ports"]] == [port]
        assert f":{port}/" in " ".join(definition["healthcheck"]["test"])


def test_prometheus_scrapes_the_console():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {f"{name}:{dns['port']}" for job in config["scrape_configs"]
               for dns in job.get("dns_sd_configs") or [] for name in dns["names"]}
    assert "console:8000" in targets


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], check=False,
                                        capture_output=True).returncode != 0:
        pytest.skip("docker compose is not installed here")
    env = {**os.environ, **COMPOSE_EXAMPLE_ENV}
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                            check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --- Kubernetes ------------------------------------------------------------------------------------------


@cache
def manifests() -> tuple[dict, ...]:
    documents = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return tuple(documents)


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def workloads() -> dict[str, dict]:
    """Deployments and Jobs, by name: their pod spec is what runs."""
    return {**of_kind("Deployment"), **of_kind("Job")}


def containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_env(container: dict) -> dict[str, str]:
    """The container's environment as the pod gets it: ConfigMap values, Secrets' example values."""
    configmaps = of_kind("ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"envFrom other than a ConfigMap: {source}"
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        reference = item.get("valueFrom") or {}
        if "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            env[item["name"]] = configmaps[ref["name"]]["data"][ref["key"]]
        else:
            env[item["name"]] = EXAMPLE_SECRET_VALUES[reference["secretKeyRef"]["key"]]
    return env


def container_port(container: dict, name: str = "http") -> int:
    return next(port["containerPort"] for port in container["ports"] if port["name"] == name)


def test_kustomizations_list_every_manifest():
    for kustomization in sorted(K8S.rglob("kustomization.yaml")):
        folder = kustomization.parent
        listed = yaml.safe_load(kustomization.read_text(encoding="utf-8"))["resources"]
        files = {path.name for path in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert files <= set(listed), f"{folder.relative_to(ROOT)}: not in the kustomization: {files - set(listed)}"
        for resource in listed:
            assert (folder / resource).exists(), f"{kustomization.relative_to(ROOT)} lists a missing {resource}"


def test_every_app_has_a_deployment_of_two_replicas_or_more():
    deployments = of_kind("Deployment")
    assert set(deployments) == set(APPS)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, f"{name} runs a single replica"
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", APPS)
def test_deployment_probes_paths_the_app_serves_on_its_port(name):
    container = containers(of_kind("Deployment")[name])[0]
    assert container["command"] == ["cpts", "serve", name]
    # A service stays in its Service while its database answers (/readyz/traffic): a broker outage must not
    # take the HTTP API down. The console has no broker: /readyz.
    readiness = "/readyz" if name == CONSOLE else "/readyz/traffic"
    for probe, path in (("readinessProbe", readiness), ("livenessProbe", "/healthz")):
        check = container[probe]["httpGet"]
        assert check["path"] == path, f"{name} {probe} probes {check['path']}"
        assert check["path"] in served_paths(name), f"{name} does not serve {check['path']}"
        assert check["port"] in ("http", container_port(container))


@pytest.mark.parametrize("name", APPS)
def test_container_port_is_the_port_the_command_listens_on(name, monkeypatch):
    container = containers(of_kind("Deployment")[name])[0]
    settings = validated(settings_class(name), container_env(container), monkeypatch)
    assert settings.http_host == "0.0.0.0"
    assert container_port(container) == settings.http_port


def test_containers_get_their_environment_from_configmaps_and_secrets_only():
    for name, workload in workloads().items():
        for container in containers(workload):
            for item in container.get("env", []):
                reference = item.get("valueFrom") or {}
                assert "value" not in item, f"{name}: {item['name']} has a literal value"
                assert {"configMapKeyRef", "secretKeyRef"} & set(reference), f"{name}: {item['name']}"
                if SECRET_NAME.search(item["name"]):
                    assert "secretKeyRef" in reference, f"{name}: {item['name']} does not come from a Secret"
    for name, configmap in of_kind("ConfigMap").items():
        for key, value in configmap["data"].items():
            assert not SECRET_NAME.search(key), f"ConfigMap {name} holds {key}: it belongs in a Secret"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"ConfigMap {name} {key} has credentials"
    assert not of_kind("Secret"), "Secrets are created by the operators, not committed"


def test_every_variable_is_read_by_the_settings_and_passes_the_production_rules(monkeypatch):
    every_service = set().union(*(settings_variables(settings_class(app)) for app in PLATFORM))
    for name, workload in workloads().items():
        for container in containers(workload):
            classes = settings_classes_of(container["command"])
            env = container_env(container)
            readable = set().union(*(settings_variables(cls) for cls in classes)) | LIBRARY_VARIABLES
            if workload["kind"] == "Job":
                readable |= every_service  # the jobs share the services' common ConfigMap
            unknown = sorted(set(env) - readable)
            assert not unknown, f"{name}: no setting reads {unknown}"
            for cls in classes:
                settings = validated(cls, env, monkeypatch)
                if hasattr(settings, "profile"):
                    assert settings.profile == "production", f"{name} does not run the production profile"


def test_migrate_job_reaches_every_service_database_and_topics_job_the_broker():
    jobs = of_kind("Job")
    migrate = containers(jobs["cpts-migrate"])[0]
    assert migrate["command"] == ["cpts", "migrate", "--all"]
    assert jobs["cpts-migrate"]["spec"].get("parallelism", 1) == 1
    variables = {item["name"] for item in migrate["env"]}
    for name in PLATFORM:
        prefix = settings_class(name).model_config["env_prefix"]
        assert f"{prefix}DATABASE_URL" in variables, f"the migrations cannot reach {name}'s database"
    topics = containers(jobs["cpts-topics"])[0]
    assert topics["command"] == ["cpts", "topics"]
    assert "CPTS_KAFKA_BOOTSTRAP_SERVERS" in container_env(topics)


def test_kafka_clients_get_the_credentials_and_files_of_their_listener(monkeypatch):
    """The services and the topics job reach Kafka with every setting its security protocol needs."""
    clients = {name: of_kind("Deployment")[name] for name in PLATFORM}
    clients["cpts-topics"] = of_kind("Job")["cpts-topics"]
    for name, workload in clients.items():
        container = containers(workload)[0]
        env = container_env(container)
        for cls in settings_classes_of(container["command"]):
            settings = validated(cls, env, monkeypatch)
            if settings.kafka_security_protocol.startswith("SASL_"):
                assert settings.kafka_sasl_username, f"{name}: no SASL user"
                assert settings.kafka_sasl_password, f"{name}: no SASL password"
            mounts = [mount["mountPath"] for mount in container.get("volumeMounts", [])]
            for path in (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile):
                if path is not None:
                    mounted = any(str(path).startswith(mount + "/") for mount in mounts)
                    assert mounted, f"{name}: {path} is on no volume"


def test_services_select_the_pods_of_their_deployment():
    deployments = of_kind("Deployment")
    services = of_kind("Service")
    assert set(services) == set(deployments)
    for name, service in services.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        selector = service["spec"]["selector"]
        assert selector and selector.items() <= pod_labels.items(), f"Service {name} selects no pod of its app"
        container = containers(deployments[name])[0]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ("http", container_port(container))
            assert port["port"] == container_port(container)


def test_deployment_selectors_match_their_pod_labels():
    for name, deployment in of_kind("Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items(), name


def test_every_container_sets_resources_and_runs_as_non_root_on_a_read_only_root():
    for name, workload in workloads().items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{name} may run as root"
        assert pod["securityContext"]["runAsUser"] != 0
        for container in containers(workload):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: no {kind}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: no writable /tmp on a read-only root"


def test_every_workload_runs_the_same_pinned_image():
    images = {container["image"] for workload in workloads().values() for container in containers(workload)}
    assert len(images) == 1, images
    image = images.pop()
    assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], image
    for kustomization in sorted(K8S.rglob("kustomization.yaml")):
        for override in yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("images", []):
            assert image.startswith(override["name"] + ":"), f"{kustomization}: {override['name']}"


def test_disruption_budgets_and_autoscalers_cover_every_deployment():
    deployments = of_kind("Deployment")
    for name, deployment in deployments.items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        budgets = [pdb for pdb in of_kind("PodDisruptionBudget").values()
                   if pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()]
        assert budgets, f"no PodDisruptionBudget for {name}"
        assert all(pdb["spec"].get("minAvailable", 0) < deployment["spec"]["replicas"] for pdb in budgets)
    for name, hpa in of_kind("HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments, name
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert set(of_kind("HorizontalPodAutoscaler")) == set(deployments)


def test_ingresses_are_tls_only_and_fhir_requires_a_client_certificate():
    ingresses = of_kind("Ingress")
    for name, ingress in ingresses.items():
        tls_hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
        assert {rule["host"] for rule in ingress["spec"]["rules"]} <= tls_hosts, f"{name} serves plain http"
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    fhir = ingresses["fhir"]["metadata"]["annotations"]
    assert fhir["nginx.ingress.kubernetes.io/auth-tls-verify-client"] == "on"
    assert fhir["nginx.ingress.kubernetes.io/auth-tls-secret"].startswith("cpts/")
    assert not any(key.startswith("nginx.ingress.kubernetes.io/auth-tls")
                   for key in ingresses["console"]["metadata"]["annotations"])


def test_fhir_ingress_routes_every_fhir_resource_to_the_service_that_serves_it():
    routes = {path["path"]: path["backend"]["service"]["name"]
              for rule in of_kind("Ingress")["fhir"]["spec"]["rules"] for path in rule["http"]["paths"]}
    served = {"/fhir/" + path.split("/")[2]: app for app in PLATFORM for path in served_paths(app)
              if path.startswith("/fhir/")}
    assert routes == served


def test_network_policies_deny_by_default():
    policies = of_kind("NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")


def test_kubectl_renders_the_kustomizations():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here")
    rendered = []
    for folder in (K8S, K8S / "jobs"):
        result = subprocess.run([kubectl, "kustomize", str(folder)], check=False, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        rendered.extend(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered}
    assert names == {(doc["kind"], doc["metadata"]["name"]) for doc in manifests()}
    assert {doc["metadata"].get("namespace") for doc in rendered if doc["kind"] != "Namespace"} == {"cpts"}
