"""Wiring of the indicators service."""

from pathlib import Path

from cpts_indicators.api.custom import router as custom_router
from cpts_indicators.api.fhir import router as fhir_router
from cpts_indicators.api.questionnaire import router as questionnaire_router
from cpts_indicators.api.report import router as report_router
from cpts_indicators.api.routes import router
from cpts_indicators.consumers import SUBSCRIPTIONS
from cpts_indicators.repository import metadata, tables
from cpts_indicators.settings import Settings
import cpts_geo
from cpts_platform.service import ServiceDefinition

service = ServiceDefinition(
    name="indicators",
    title="Indicateurs ACI",
    description="Indicateurs de l'ACI par CPTS et par période, calculés depuis les événements, "
                "diffusés à l'ARS sans jamais identifier un patient.",
    settings_class=Settings,
    metadata=metadata,
    tables=tables,
    migrations=Path(__file__).parent / "migrations",
    routers=[router, fhir_router, questionnaire_router, report_router, custom_router],
    subscriptions=SUBSCRIPTIONS,
    warm_up=cpts_geo.load_all,
)
