"""Wiring of the snp-dispatch service."""

from pathlib import Path

import cpts_geo
from cpts_platform.service import ServiceDefinition
from cpts_snp_dispatch.api.fhir import router as fhir_router
from cpts_snp_dispatch.api.routes import DOMAIN_PROBLEMS, router
from cpts_snp_dispatch.consumers import SUBSCRIPTIONS
from cpts_snp_dispatch.repository import metadata, tables
from cpts_snp_dispatch.settings import Settings
from cpts_snp_dispatch.sweeper import router as sweeper_router

service = ServiceDefinition(
    name="snp-dispatch",
    title="Soins non programmés",
    description="Créneaux publiés par les professionnels, recherche et réservation pour la régulation SAS "
                "et les secrétariats de CPTS.",
    settings_class=Settings,
    metadata=metadata,
    tables=tables,
    migrations=Path(__file__).parent / "migrations",
    routers=[router, fhir_router, sweeper_router],
    subscriptions=SUBSCRIPTIONS,
    problems=DOMAIN_PROBLEMS,
    warm_up=cpts_geo.load_all,
)
