"""Service settings: environment precedence, defaults, and the production profile's safety checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from cpts_platform.settings import LOCAL_AUDIENCE, LOCAL_ISSUER, KafkaSettings, ServiceSettings, TrustedIssuer
from cpts_registry.settings import Settings

POSTGRES_URL = "postgresql+asyncpg://cpts@db.internal:5432/registry"
JWKS_URL = "https://auth.example.fr/realms/cpts/protocol/openid-connect/certs"
ISSUER = "https://auth.example.fr/realms/cpts"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the process environment: start every test without any CPTS_* variable."""
    for name in list(os.environ):
        if name.upper().startswith("CPTS_"):
            monkeypatch.delenv(name)


def messages(error: ValidationError) -> str:
    """The error messages only (str() of the error also shows the input, which names every field)."""
    return " | ".join(e["msg"] for e in error.errors())


def production(**overrides) -> Settings:
    values = {"profile": "production", "database_url": POSTGRES_URL, "auth_jwks_url": JWKS_URL,
              "auth_issuer": ISSUER, "auth_audience": "cpts-platform", "kafka_security_protocol": "SSL"}
    values.update(overrides)
    return Settings(**values)


# --- production safety --------------------------------------------------------------------------------------


def test_production_refuses_sqlite_database():
    with pytest.raises(ValidationError) as caught:
        production(database_url="sqlite+aiosqlite:///var/registry.db")
    message = messages(caught.value)
    assert "database_url" in message
    assert "SQLite" in message
    assert "auth" not in message


def test_production_refuses_the_default_database_which_is_sqlite():
    with pytest.raises(ValidationError) as caught:
        production(database_url=None)
    assert "database_url" in messages(caught.value)


def test_production_refuses_the_local_issuer():
    with pytest.raises(ValidationError) as caught:
        Settings(profile="production", database_url=POSTGRES_URL)
    message = messages(caught.value)
    assert "auth_issuer" in message
    assert "auth_jwks_url" in message
    assert "database_url" not in message


def test_production_refuses_the_local_issuer_name_even_with_an_https_jwks():
    with pytest.raises(ValidationError) as caught:
        production(auth_issuer=LOCAL_ISSUER)
    assert "local demo issuer" in messages(caught.value)


@pytest.mark.parametrize("jwks_url", ["http://auth.example.fr/certs", "file:///var/local-issuer/jwks.json"])
def test_production_refuses_a_jwks_that_is_not_https(jwks_url: str):
    with pytest.raises(ValidationError) as caught:
        production(auth_jwks_url=jwks_url)
    assert "https" in messages(caught.value)


def test_production_reports_every_unsafe_setting_at_once():
    with pytest.raises(ValidationError) as caught:
        Settings(profile="production")
    message = messages(caught.value)
    assert "database_url" in message
    assert "auth_issuer" in message
    assert "must be an https URL" in message


def test_production_profile_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_PROFILE", "production")
    with pytest.raises(ValidationError):
        Settings()


def test_production_with_postgres_https_jwks_and_real_issuer_is_accepted():
    settings = production()
    assert settings.profile == "production"
    assert settings.database_url == POSTGRES_URL
    assert settings.auth_jwks_url == JWKS_URL
    assert settings.auth_issuer == ISSUER


def test_production_accepted_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_PROFILE", "production")
    monkeypatch.setenv("CPTS_REGISTRY_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("CPTS_AUTH_JWKS_URL", JWKS_URL)
    monkeypatch.setenv("CPTS_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("CPTS_KAFKA_SECURITY_PROTOCOL", "SSL")
    settings = Settings()
    assert (settings.profile, settings.database_url, settings.auth_issuer) == ("production", POSTGRES_URL, ISSUER)


@pytest.mark.parametrize("profile", ["local", "test"])
def test_local_and_test_profiles_allow_sqlite_and_the_local_issuer(profile: str):
    settings = Settings(profile=profile)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert (settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url) == (
        LOCAL_ISSUER, LOCAL_AUDIENCE, None)


def test_unknown_profile_is_refused():
    with pytest.raises(ValidationError) as caught:
        Settings(profile="staging")
    assert [e["loc"] for e in caught.value.errors()] == [("profile",)]


# --- environment precedence ---------------------------------------------------------------------------------


def test_http_port_default_then_common_then_service_specific(monkeypatch: pytest.MonkeyPatch):
    assert Settings().http_port == 8001
    monkeypatch.setenv("CPTS_HTTP_PORT", "9000")
    assert Settings().http_port == 9000
    monkeypatch.setenv("CPTS_REGISTRY_HTTP_PORT", "9101")
    assert Settings().http_port == 9101
    monkeypatch.delenv("CPTS_HTTP_PORT")
    assert Settings().http_port == 9101


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_REGISTRY_HTTP_PORT", "9101")
    assert Settings(http_port=7000).http_port == 7000


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("cpts_registry_log_level", "DEBUG")
    assert Settings().log_level == "DEBUG"


def test_another_service_prefix_does_not_leak_into_the_registry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_INDICATORS_HTTP_PORT", "9999")
    monkeypatch.setenv("CPTS_INDICATORS_DATABASE_URL", POSTGRES_URL)
    settings = Settings()
    assert settings.http_port == 8001
    assert settings.database_url != POSTGRES_URL


def test_common_settings_apply_to_every_service(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("CPTS_KAFKA_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("CPTS_MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.kafka_topic_prefix == "staging."
    assert settings.max_body_bytes == 2048


def test_extra_issuers_read_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_AUTH_EXTRA_ISSUERS",
                       '[{"issuer": "https://auth.esante.gouv.fr/auth/realms/esante-wallet", '
                       '"audience": "cpts", "jwks_url": "https://auth.esante.gouv.fr/certs"}]')
    assert Settings().auth_extra_issuers == [TrustedIssuer(
        issuer="https://auth.esante.gouv.fr/auth/realms/esante-wallet", audience="cpts",
        jwks_url="https://auth.esante.gouv.fr/certs")]


def test_invalid_environment_value_is_a_validation_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_REGISTRY_HTTP_PORT", "eighty")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [e["loc"] for e in caught.value.errors()] == [("http_port",)]


# --- defaults -----------------------------------------------------------------------------------------------


def test_default_database_is_a_sqlite_file_under_var_dir_named_after_the_service(tmp_path: Path):
    settings = Settings(var_dir=tmp_path / "var")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'var' / 'registry.db'}"


def test_default_database_follows_var_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CPTS_VAR_DIR", str(tmp_path / "elsewhere"))
    settings = Settings()
    assert settings.var_dir == tmp_path / "elsewhere"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'elsewhere' / 'registry.db'}"


def test_base_settings_default_database_uses_its_service_name():
    assert ServiceSettings().database_url == "sqlite+aiosqlite:///var/service.db"


def test_derived_values_of_the_registry(tmp_path: Path):
    settings = Settings(var_dir=tmp_path)
    assert settings.service_name == "registry"
    assert settings.source == "/cpts/registry"
    assert settings.local_issuer_dir == tmp_path / "local-issuer"


# --- Kafka admin settings -----------------------------------------------------------------------------------


def test_kafka_settings_defaults():
    settings = KafkaSettings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_topic_prefix == ""
    assert (settings.topic_partitions, settings.topic_replication_factor) == (3, 1)


def test_kafka_settings_read_the_common_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CPTS_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("CPTS_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CPTS_DATABASE_URL", POSTGRES_URL)  # not theirs: ignored, not an error
    settings = KafkaSettings()
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.topic_replication_factor == 3


def test_production_refuses_an_extra_issuer_that_is_local_or_not_https():
    extra = [TrustedIssuer(issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE, jwks_url="file:///var/local-issuer/jwks.json")]
    try:
        production(auth_extra_issuers=extra)
    except ValidationError:
        return
    raise AssertionError("an unsafe extra issuer was accepted in production")
