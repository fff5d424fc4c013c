"""The platform's services, found through the `cpts.services` entry points of the installed packages."""

from __future__ import annotations

from importlib.metadata import entry_points

from cpts_platform.service import ServiceDefinition

# Start order of the one-command run; ports are each service's default settings.
SERVICE_ORDER = ["registry", "snp-dispatch", "patient-matching", "indicators"]


def load_services() -> dict[str, ServiceDefinition]:
    found = {ep.name: ep for ep in entry_points(group="cpts.services")}
    ordered = [n for n in SERVICE_ORDER if n in found] + sorted(set(found) - set(SERVICE_ORDER))
    return {name: found[name].load() for name in ordered}


def load_service(name: str) -> ServiceDefinition:
    services = load_services()
    if name not in services:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(services)}")
    return services[name]


def openapi_document(definition: ServiceDefinition) -> str:
    import json

    from cpts_platform.service import create_app

    app = create_app(definition, definition.settings_class(profile="test"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
