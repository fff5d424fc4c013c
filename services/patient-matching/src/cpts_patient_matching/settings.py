"""Settings of the patient-matching service (environment: `CPTS_PATIENT_MATCHING_*`, then `CPTS_*`)."""

from pydantic_settings import SettingsConfigDict

from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_PATIENT_MATCHING_", extra="ignore")

    service_name: str = "patient-matching"
    http_port: int = 8003
