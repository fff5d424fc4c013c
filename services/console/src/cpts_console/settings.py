"""Settings of the web console (environment: `CPTS_CONSOLE_*`, then the common `CPTS_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from cpts_platform.settings import LOCAL_AUDIENCE, LOCAL_ISSUER

# The services the console talks to: the first segment of `/api/<name>/...` and the setting naming its URL.
UPSTREAMS: dict[str, str] = {
    "registry": "registry_url",
    "snp": "snp_dispatch_url",
    "matching": "patient_matching_url",
    "indicators": "indicators_url",
}


class ConsoleSettings(BaseSettings):
    """The console holds no data: it serves the single-page app, proxies the services' APIs, logs users in."""

    model_config = SettingsConfigDict(env_prefix="CPTS_CONSOLE_", extra="ignore")

    service_name: str = "console"
    profile: Literal["local", "test", "production"] = "local"
    var_dir: Path = Field(default=Path("var"), description="As the services': holds the local issuer's key.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
    # Logins per client address (`cpts_platform.ratelimit`): "N/minute;M/hour", every part must hold.
    rate_limit_enabled: bool = Field(default=True, description="Off only for load tests.")
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="memory:// (per process), or redis://host:6379 shared by the replicas.")
    rate_limit_login: str = Field(default="20/minute;200/hour",
                                  description="Demo and OpenID Connect logins (and callbacks) per address.")

    registry_url: str = "http://127.0.0.1:8001"
    snp_dispatch_url: str = "http://127.0.0.1:8002"
    patient_matching_url: str = "http://127.0.0.1:8003"
    indicators_url: str = "http://127.0.0.1:8004"
    proxy_timeout_seconds: float = Field(default=30.0, gt=0)

    # The demo users of the embedded run (local and test profiles only).
    demo_cpts_id: str = "690049999"
    demo_cpts_name: str = "CPTS de l'Est lyonnais"
    demo_departement: str = "69"
    demo_region_name: str = "Auvergne-Rhône-Alpes"
    demo_token_ttl_seconds: int = Field(default=8 * 3600, ge=60)
    auth_issuer: str = LOCAL_ISSUER
    auth_audience: str = LOCAL_AUDIENCE

    # Production: OpenID Connect authorization-code flow (Pro Santé Connect, or Keycloak for local accounts).
    oidc_issuer: str | None = Field(
        default=None, description="e.g. https://auth.esante.gouv.fr/auth/realms/esante-wallet")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_redirect_uri: str | None = Field(
        default=None, description="This console's callback: https://<console>/auth/oidc/callback")
    oidc_scopes: str = "openid scope_all"
    oidc_acr_values: str | None = Field(default=None, description="e.g. eidas1 for Pro Santé Connect.")

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
    def _production_safety(self) -> "ConsoleSettings":
        if self.profile == "production":
            unsafe = [f"{name}: must be an https URL in production" for name in
                      ("oidc_issuer", "oidc_redirect_uri")
                      if getattr(self, name) and not str(getattr(self, name)).startswith("https://")]
            if unsafe:
                raise ValueError("unsafe settings in production: " + "; ".join(unsafe))
        return self

    @property
    def demo_login_enabled(self) -> bool:
        """The local issuer signs demo tokens only in the embedded run; production logs in through OIDC."""
        return self.profile != "production"

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_redirect_uri)

    def upstream_url(self, name: str) -> str:
        return str(getattr(self, UPSTREAMS[name])).rstrip("/")
