"""The committed API and event documents are what the code generates."""

from pathlib import Path

from cpts_cli.services import load_services, openapi_document
from cpts_events import schemas

ROOT = Path(__file__).resolve().parents[1]


def test_event_schemas_and_asyncapi_are_up_to_date():
    assert schemas.stale(ROOT / "libs" / "events" / "schemas") == [], "run `cpts schemas`"


def test_each_service_openapi_document_is_up_to_date():
    for name, definition in load_services().items():
        path = ROOT / "services" / name / "openapi.json"
        assert path.read_text(encoding="utf-8") == openapi_document(definition), f"run `cpts openapi` ({name})"


def test_every_service_is_installed_with_the_same_layout():
    services = load_services()
    assert list(services) == ["registry", "snp-dispatch", "patient-matching", "indicators"]
    for name, definition in services.items():
        package = definition.migrations.parent
        for part in ("api", "domain", "handlers.py", "consumers.py", "repository.py", "settings.py", "app.py"):
            assert (package / part).exists(), f"{name} lacks {part}"
        assert list((package / "migrations" / "versions").glob("*.py")), f"{name} has no migration"
