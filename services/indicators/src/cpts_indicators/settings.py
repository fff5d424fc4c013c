"""Settings of the indicators service (environment: `CPTS_INDICATORS_*`, then `CPTS_*`)."""

from pydantic_settings import SettingsConfigDict

from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_INDICATORS_", extra="ignore")

    service_name: str = "indicators"
    http_port: int = 8004
