"""Wiring of the patient-matching service."""

from pathlib import Path

from cpts_patient_matching.api.routes import DOMAIN_PROBLEMS, router
from cpts_patient_matching.consumers import SUBSCRIPTIONS
from cpts_patient_matching.repository import metadata, tables
from cpts_patient_matching.settings import Settings
import cpts_geo
from cpts_platform.service import ServiceDefinition

service = ServiceDefinition(
    name="patient-matching",
    title="Accès à un médecin traitant",
    description="Patients sans médecin traitant, priorité, appariement équitable avec les médecins qui ont "
                "de la capacité, propositions et déclarations.",
    settings_class=Settings,
    metadata=metadata,
    tables=tables,
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    subscriptions=SUBSCRIPTIONS,
    problems=DOMAIN_PROBLEMS,
    warm_up=cpts_geo.load_all,
)
