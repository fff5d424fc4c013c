"""Wiring of the registry service."""

from pathlib import Path

import cpts_geo
from cpts_platform.service import ServiceDefinition
from cpts_registry.api.fhir import router as fhir_router
from cpts_registry.api.routes import DOMAIN_PROBLEMS, routers
from cpts_registry.consumers import SUBSCRIPTIONS
from cpts_registry.repository import metadata, tables
from cpts_registry.settings import Settings

service = ServiceDefinition(
    name="registry",
    title="Registre du territoire",
    description="Professionnels de santé (RPPS/ADELI), CPTS et leurs communes, participation au SAS, "
                "capacité à prendre de nouveaux patients en tant que médecin traitant.",
    settings_class=Settings,
    metadata=metadata,
    tables=tables,
    migrations=Path(__file__).parent / "migrations",
    routers=[*routers, fhir_router],
    subscriptions=SUBSCRIPTIONS,
    problems=DOMAIN_PROBLEMS,
    echo_invalid_values=True,  # public professional data only, never a patient's
    warm_up=cpts_geo.load_all,
)
