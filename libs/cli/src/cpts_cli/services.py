"""The platform's services, found through the `cpts.services` entry points of the installed packages."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable, Protocol

from fastapi import FastAPI

from cpts_platform.service import ServiceDefinition

# Start order of the one-command run; ports are each service's default settings.
SERVICE_ORDER = ["registry", "snp-dispatch", "patient-matching", "indicators"]


class WebAppDefinition(Protocol):
    """A process without a database or events of its own (the web console): entry points `cpts.web_apps`.
    It learns the services' URLs from `CPTS_<APP>_<SERVICE>_URL`."""

    name: str
    settings_class: Callable[[], Any]
    create_app: Callable[[Any], FastAPI]


def load_services() -> dict[str, ServiceDefinition]:
    found = {ep.name: ep for ep in entry_points(group="cpts.services")}
    ordered = [n for n in SERVICE_ORDER if n in found] + sorted(set(found) - set(SERVICE_ORDER))
    return {name: found[name].load() for name in ordered}


def load_web_apps() -> dict[str, WebAppDefinition]:
    return {ep.name: ep.load() for ep in sorted(entry_points(group="cpts.web_apps"), key=lambda ep: ep.name)}


def build_app(name: str) -> tuple[FastAPI, Any]:
    """The ASGI app of a service or web app, and its settings (for `cpts serve`)."""
    web_apps = load_web_apps()
    if name in web_apps:
        settings = web_apps[name].settings_class()
        return web_apps[name].create_app(settings), settings
    from cpts_platform.service import create_app

    definition = load_service(name)
    settings = definition.settings_class()
    return create_app(definition, settings, freeze_heap=True), settings


def load_service(name: str) -> ServiceDefinition:
    services = load_services()
    if name not in services:
        known = [*services, *load_web_apps()]
        raise KeyError(f"unknown service {name!r}; known: {', '.join(known)}")
    return services[name]


def openapi_document(definition: ServiceDefinition) -> str:
    import json

    from cpts_platform.service import create_app

    app = create_app(definition, definition.settings_class(profile="test"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
