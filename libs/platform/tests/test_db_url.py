"""PostgreSQL URLs written the libpq way (`sslmode=`): translated for asyncpg, or refused by the settings
with a message naming `database_url` (and never the URL, which holds the password)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from cpts_platform.db import SSL_MODES, asyncpg_url, create_engine
from cpts_registry.settings import Settings

BASE = "postgresql+asyncpg://cpts_registry:pa%40ss@pg-rw.postgres.svc:5432/cpts_registry"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CPTS_"):
            monkeypatch.delenv(name)


def messages(error: ValidationError) -> str:
    return " | ".join(e["msg"] for e in error.errors())


@pytest.mark.parametrize("mode", SSL_MODES)
def test_sslmode_becomes_asyncpgs_ssl(mode):
    url = make_url(asyncpg_url(f"{BASE}?sslmode={mode}"))
    assert dict(url.query) == {"ssl": mode}
    assert url.password == "pa@ss" and url.host == "pg-rw.postgres.svc" and url.database == "cpts_registry"


def test_other_parameters_are_kept():
    url = make_url(asyncpg_url(f"{BASE}?sslmode=verify-full&prepared_statement_cache_size=0"))
    assert dict(url.query) == {"ssl": "verify-full", "prepared_statement_cache_size": "0"}


def test_urls_without_sslmode_are_left_as_they_are():
    for url in (BASE, f"{BASE}?ssl=verify-full", "sqlite+aiosqlite:///var/registry.db",
                "postgresql+psycopg://u@h/db?sslmode=require"):  # libpq itself reads sslmode
        assert asyncpg_url(url) == url


def test_the_same_mode_twice_is_accepted_and_different_ones_refused():
    assert dict(make_url(asyncpg_url(f"{BASE}?ssl=require&sslmode=require")).query) == {"ssl": "require"}
    with pytest.raises(ValueError, match="disagree"):
        asyncpg_url(f"{BASE}?ssl=require&sslmode=verify-full")


@pytest.mark.parametrize(("parameter", "variable"), [
    ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY")])
def test_libpq_file_parameters_point_at_the_environment_variable(parameter, variable):
    with pytest.raises(ValueError, match=variable):
        asyncpg_url(f"{BASE}?ssl=verify-full&{parameter}=/etc/cpts/postgres/ca.crt")


def test_the_engine_connects_with_the_translated_url():
    engine = create_engine(f"{BASE}?sslmode=verify-full")
    try:
        assert dict(engine.url.query) == {"ssl": "verify-full"}
        # What SQLAlchemy hands to asyncpg.connect: `ssl`, never `sslmode`.
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        assert kwargs["ssl"] == "verify-full" and "sslmode" not in kwargs
    finally:
        engine.sync_engine.dispose()


async def test_sslmode_reaches_postgresql_without_a_type_error(database_url):
    """On a real server: `?sslmode=disable` connects (the local server has no TLS)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = create_engine(database_url + "?sslmode=disable")
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SELECT 1")).scalar_one() == 1
    finally:
        await engine.dispose()


def test_settings_accept_sslmode():
    assert Settings(database_url=f"{BASE}?sslmode=verify-full").database_url.endswith("?sslmode=verify-full")


@pytest.mark.parametrize(("query", "named"), [
    ("sslmode=verify", "sslmode='verify' is not an SSL mode"),
    ("ssl=on", "ssl='on' is not an SSL mode"),
    ("sslmode=require&sslrootcert=/etc/ca.crt", "PGSSLROOTCERT"),
])
def test_settings_refuse_what_asyncpg_cannot_take_naming_the_setting(query, named):
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=f"{BASE}?{query}")
    message = messages(caught.value)
    assert "database_url" in message and named in message
    assert "pa%40ss" not in message and "pa@ss" not in message


def test_settings_refuse_a_malformed_url_without_echoing_it():
    with pytest.raises(ValidationError) as caught:
        Settings(database_url="postgres ql://cpts:secret@db")
    message = messages(caught.value)
    assert "database_url" in message and "secret" not in message
