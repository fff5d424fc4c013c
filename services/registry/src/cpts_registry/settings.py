"""Settings of the registry service (environment: `CPTS_REGISTRY_*`, then `CPTS_*`)."""

from pydantic_settings import SettingsConfigDict

from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_REGISTRY_", extra="ignore")

    service_name: str = "registry"
    http_port: int = 8001
