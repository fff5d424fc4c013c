"""Service settings from the environment: `CPTS_<SERVICE>_<NAME>` first, then the common `CPTS_<NAME>`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
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


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaClientSettings(BaseSettings):
    """How every Kafka client of the platform reaches the broker (`CPTS_KAFKA_*`): the listener's address and
    security. `cpts_platform.kafka.connection_kwargs` turns them into the aiokafka clients' arguments."""

    model_config = SettingsConfigDict(env_prefix="CPTS_", extra="ignore")

    profile: Literal["local", "test", "production"] = "local"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_allow_plaintext: bool = Field(
        default=False, description="Production: accept an unencrypted listener (PLAINTEXT, SASL_PLAINTEXT), "
                                   "for a broker reachable only on a private network.")
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle of the broker's certificate (PEM); default: the system's roots.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (PEM), mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Key of the client certificate (PEM).")

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> "KafkaClientSettings":
        problems = []
        sasl = self.kafka_security_protocol.startswith("SASL_")
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        if sasl and self.kafka_sasl_mechanism is None:
            problems.append(f"kafka_sasl_mechanism: required with {self.kafka_security_protocol} "
                            "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
        if not sasl and (self.kafka_sasl_mechanism or self.kafka_sasl_username or self.kafka_sasl_password):
            problems.append("kafka_sasl_*: only with kafka_security_protocol SASL_PLAINTEXT or SASL_SSL")
        if not tls and (self.kafka_ssl_cafile or self.kafka_ssl_certfile or self.kafka_ssl_keyfile):
            problems.append("kafka_ssl_*: only with kafka_security_protocol SSL or SASL_SSL")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            problems.append("kafka_ssl_certfile, kafka_ssl_keyfile: a client certificate needs both")
        if problems:
            raise ValueError("inconsistent Kafka settings: " + "; ".join(problems))
        return self

    def kafka_unsafe(self) -> list[str]:
        """What the production profile refuses in the Kafka settings."""
        if self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and not self.kafka_allow_plaintext:
            return [f"kafka_security_protocol: {self.kafka_security_protocol} is unencrypted; production uses "
                    "SSL or SASL_SSL, or sets kafka_allow_plaintext for a broker reachable only on a private "
                    "network"]
        return []


class KafkaSettings(KafkaClientSettings):
    """What the broker admin tasks need, without a service's database or auth (`CPTS_*`)."""

    model_config = SettingsConfigDict(env_prefix="CPTS_", extra="ignore")

    kafka_topic_prefix: str = ""
    topic_partitions: int = 3
    topic_replication_factor: int = 1

    @model_validator(mode="after")
    def _production_safety(self) -> "KafkaSettings":
        if self.profile == "production" and self.kafka_unsafe():
            raise ValueError("unsafe settings outside the local profile: " + "; ".join(self.kafka_unsafe()))
        return self


class ServiceSettings(KafkaClientSettings):
    """Subclass per service, setting `service_name`, `model_config.env_prefix` and `http_port`."""

    model_config = SettingsConfigDict(env_prefix="CPTS_SERVICE_", extra="ignore")

    service_name: str = "service"
    profile: Literal["local", "test", "production"] = "local"
    var_dir: Path = Path("var")
    database_url: str | None = None
    database_pool_size: int = 10
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

    # Rate limits per token subject (`cpts_platform.ratelimit`): "N/second;M/minute", every part must hold.
    rate_limit_enabled: bool = Field(default=True, description="Off only for benchmarks and load tests.")
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where the counters live: memory:// (per process), or a store shared by the replicas: "
                    "redis://host:6379, memcached://host:11211.")
    rate_limit_search: str = Field(
        default="10/second;300/minute", description="Searches of a user (slots for a care request).")
    rate_limit_fhir_search: str = Field(
        default="50/second;1500/minute",
        description="FHIR searches of a client (the national SAS aggregator queries for all its users).")

    outbox_batch_size: int = 500
    outbox_poll_interval_seconds: float = 0.5
    outbox_retention_days: int = 30
    consumer_dedup_retention_days: int = Field(
        default=30, ge=0,
        description="Days a consumed event id is remembered (processed_event) to skip its redeliveries; 0 keeps "
                    "them forever. See deploy/PRODUCTION.md, Retention.")
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 3
    consumer_session_timeout_ms: int = 6000
    consumer_fetch_max_wait_ms: int = Field(
        default=100, ge=0,
        description="Longest a fetch waits on the broker for new events: the worst delay before an event that "
                    "arrives on an idle partition is read when the broker answers a waiting fetch only at "
                    "this limit. An idle consumer sends about 1000/this fetches a second.")
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
        from cpts_platform.db import asyncpg_url  # SQLAlchemy only for the settings that have a database

        try:
            asyncpg_url(self.database_url)
        except ValueError as exc:
            raise ValueError(f"database_url: {exc}") from None
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
            unsafe += self.kafka_unsafe()
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
