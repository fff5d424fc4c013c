"""Service settings from the environment: `CPTS_<SERVICE>_<NAME>` first, then the common `CPTS_<NAME>`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict


class TrustedIssuer(BaseModel):
    issuer: str
    audience: str
    jwks_url: str
    default_roles: list[str] = Field(
        default_factory=list, description="Roles of a token that carries none, e.g. ['professional'] for Pro Santé Connect."
    )


LOCAL_ISSUER = "cpts-local"
LOCAL_AUDIENCE = "cpts-platform"


class KafkaSettings(BaseSettings):
    """What the broker admin tasks need, without a service's database or auth (`CPTS_*`)."""

    model_config = SettingsConfigDict(env_prefix="CPTS_", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = ""
    topic_partitions: int = 3
    topic_replication_factor: int = 1


class ServiceSettings(BaseSettings):
    """Subclass per service, setting `service_name`, `model_config.env_prefix` and `http_port`."""

    model_config = SettingsConfigDict(env_prefix="CPTS_SERVICE_", extra="ignore")

    service_name: str = "service"
    profile: Literal["local", "test", "production"] = "local"
    var_dir: Path = Path("var")
    database_url: str | None = None
    database_pool_size: int = 10
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_client_id: str | None = None
    kafka_topic_prefix: str = Field(default="", description="Namespace of every topic and consumer group (environments, tests).")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"

    auth_issuer: str = LOCAL_ISSUER
    auth_audience: str = LOCAL_AUDIENCE
    auth_jwks_url: str | None = Field(
        default=None, description="JWKS of the issuer; in the local profile, the local issuer's key under var/."
    )
    auth_extra_issuers: list[TrustedIssuer] = Field(default_factory=list)

    outbox_batch_size: int = 500
    outbox_poll_interval_seconds: float = 0.5
    outbox_retention_days: int = 30
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 3
    consumer_session_timeout_ms: int = 6000
    topic_partitions: int = 3
    topic_replication_factor: int = 1

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        common = EnvSettingsSource(settings_cls, env_prefix="CPTS_", case_sensitive=False)
        return init_settings, env_settings, common, file_secret_settings

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> "ServiceSettings":
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / (self.service_name + '.db')}"
        if self.profile == "production":
            unsafe = []
            if self.database_url.startswith("sqlite"):
                unsafe.append("database_url: SQLite is for the embedded run; production uses PostgreSQL")
            if self.auth_issuer == LOCAL_ISSUER or not self.auth_jwks_url:
                unsafe.append("auth_issuer/auth_jwks_url: the local demo issuer is refused in production")
            if not self.auth_jwks_url or not self.auth_jwks_url.startswith("https://"):
                unsafe.append("auth_jwks_url: must be an https URL in production")
            for extra in self.auth_extra_issuers:
                if extra.issuer == LOCAL_ISSUER or not extra.jwks_url.startswith("https://"):
                    unsafe.append(f"auth_extra_issuers: {extra.issuer!r} must be a real issuer with an https JWKS")
            if unsafe:
                raise ValueError("unsafe settings outside the local profile: " + "; ".join(unsafe))
        return self

    @property
    def source(self) -> str:
        """CloudEvents `source` of the events this service publishes."""
        return f"/cpts/{self.service_name}"

    @property
    def local_issuer_dir(self) -> Path:
        return self.var_dir / "local-issuer"
