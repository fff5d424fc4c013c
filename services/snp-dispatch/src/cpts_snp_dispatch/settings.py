"""Settings of the snp-dispatch service (environment: `CPTS_SNP_DISPATCH_*`, then `CPTS_*`)."""

from pydantic_settings import SettingsConfigDict

from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_SNP_DISPATCH_", extra="ignore")

    service_name: str = "snp-dispatch"
    http_port: int = 8002
