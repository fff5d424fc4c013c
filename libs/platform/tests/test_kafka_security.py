"""Kafka connection security: the settings (`CPTS_KAFKA_*`), the client arguments built from them for every
protocol, the production profile's refusal of unencrypted listeners, and clients on the local PLAINTEXT
broker."""

from __future__ import annotations

import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from cpts_events import encode, new_event
from cpts_events.registry import ProfessionalRegistered
from cpts_platform.consumer import EventConsumer
from cpts_platform.db import Database, add_platform_tables
from cpts_platform.kafka import KafkaConfigurationError, connection_kwargs, ensure_topics, new_producer
from cpts_platform.settings import KafkaSettings
from cpts_platform.testing import eventually
from cpts_registry.settings import Settings

POSTGRES_URL = "postgresql+asyncpg://cpts@db.internal:5432/registry"
PRODUCTION = {"profile": "production", "database_url": POSTGRES_URL,
              "auth_issuer": "https://auth.example.fr/realms/cpts",
              "auth_jwks_url": "https://auth.example.fr/realms/cpts/protocol/openid-connect/certs"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CPTS_"):
            monkeypatch.delenv(name)


def messages(error: ValidationError) -> str:
    return " | ".join(e["msg"] for e in error.errors())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA certificate and a client certificate with its key, in PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)

    def certificate(name: str, key, issuer_name: str, issuer_key, *, ca: bool) -> x509.Certificate:
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca": folder / "ca.crt", "cert": folder / "client.crt", "key": folder / "client.key"}
    files["ca"].write_bytes(certificate("cpts-test-ca", ca_key, "cpts-test-ca", ca_key, ca=True)
                            .public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(certificate("registry", client_key, "cpts-test-ca", ca_key, ca=False)
                              .public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(client_key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return files


# --- client arguments per protocol ------------------------------------------------------------------------


def test_plaintext_gives_the_bootstrap_servers_only():
    kwargs = connection_kwargs(KafkaSettings(kafka_bootstrap_servers="kafka-0:9092,kafka-1:9092"))
    assert kwargs == {"bootstrap_servers": "kafka-0:9092,kafka-1:9092", "security_protocol": "PLAINTEXT"}


def test_a_bare_address_is_a_plaintext_listener():
    assert connection_kwargs("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092",
                                                    "security_protocol": "PLAINTEXT"}


def test_ssl_verifies_the_broker_against_the_ca_file(pki):
    kwargs = connection_kwargs(KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki["ca"]))
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "cpts-test-ca"),),)]
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(kwargs)


def test_ssl_without_a_ca_file_trusts_the_system_roots():
    context = connection_kwargs(KafkaSettings(kafka_security_protocol="SSL"))["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_mutual_tls_loads_the_client_certificate(pki, monkeypatch):
    loaded = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self, certfile, keyfile=None, password=None):
        loaded.append((Path(certfile), Path(keyfile)))
        return original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    kwargs = connection_kwargs(KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki["ca"],
                                             kafka_ssl_certfile=pki["cert"], kafka_ssl_keyfile=pki["key"]))
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert loaded == [(pki["cert"], pki["key"])]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_the_mechanism_the_credentials_and_the_tls_context(pki, mechanism):
    settings = KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                             kafka_sasl_username="cpts-registry", kafka_sasl_password="s3cret",
                             kafka_ssl_cafile=pki["ca"])
    kwargs = connection_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        mechanism, "cpts-registry", "s3cret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(settings)


def test_sasl_plaintext_has_no_tls_context():
    kwargs = connection_kwargs(KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT",
                                             kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                                             kafka_sasl_password="p"))
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "PLAIN"


async def test_every_client_gets_the_same_arguments(pki, monkeypatch, tmp_path):
    """Producer, consumer and admin client: each is built with `connection_kwargs`."""
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="cpts-registry", kafka_sasl_password="s3cret",
                        kafka_ssl_cafile=pki["ca"])
    producer = new_producer(settings, client_id="registry")
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    assert producer.client._sasl_plain_password == "s3cret"
    assert isinstance(producer.client._ssl_context, ssl.SSLContext)

    built = {}

    class Recorder:
        def __init__(self, *args, **kwargs):
            built.update(kwargs)
            raise RuntimeError("recorded")

    monkeypatch.setattr("cpts_platform.kafka.AIOKafkaAdminClient", Recorder)
    with pytest.raises(RuntimeError, match="recorded"):
        await ensure_topics(settings, ["registry"])
    assert built["security_protocol"] == "SASL_SSL" and built["sasl_plain_username"] == "cpts-registry"

    monkeypatch.setattr("cpts_platform.consumer.AIOKafkaConsumer", Recorder)
    consumer = EventConsumer(service="registry", group_id="g", topics_=["registry"], handlers={},
                             database=Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
                                               add_platform_tables(sa.MetaData())),
                             producer=producer, bootstrap_servers=settings)
    built.clear()
    with pytest.raises(RuntimeError, match="recorded"):
        await consumer.start()
    assert built["security_protocol"] == "SASL_SSL" and built["sasl_mechanism"] == "SCRAM-SHA-512"
    await consumer.database.dispose()
    await producer.client.close()


def test_a_missing_file_names_its_setting(tmp_path):
    settings = KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "absent.crt")
    with pytest.raises(KafkaConfigurationError, match="kafka_ssl_cafile"):
        connection_kwargs(settings)


def test_sasl_without_credentials_names_the_settings():
    settings = KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512")
    with pytest.raises(KafkaConfigurationError, match="kafka_sasl_username, kafka_sasl_password"):
        connection_kwargs(settings)


# --- settings -----------------------------------------------------------------------------------------------


def test_settings_read_the_common_environment(monkeypatch, pki):
    monkeypatch.setenv("CPTS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CPTS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CPTS_KAFKA_SASL_USERNAME", "cpts")
    monkeypatch.setenv("CPTS_REGISTRY_KAFKA_SASL_USERNAME", "cpts-registry")  # the service's own first
    monkeypatch.setenv("CPTS_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("CPTS_KAFKA_SSL_CAFILE", str(pki["ca"]))
    for settings, username in ((Settings(), "cpts-registry"), (KafkaSettings(), "cpts")):
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_username == username
        assert settings.kafka_sasl_password.get_secret_value() == "s3cret"
        assert settings.kafka_ssl_cafile == pki["ca"]


@pytest.mark.parametrize(("values", "named"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_mechanism"),
    ({"kafka_sasl_username": "u"}, "kafka_sasl_*"),
    ({"kafka_ssl_cafile": "/etc/ca.crt"}, "kafka_ssl_*"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/etc/client.crt"}, "kafka_ssl_keyfile"),
])
def test_inconsistent_settings_are_refused(values, named):
    with pytest.raises(ValidationError) as caught:
        KafkaSettings(**values)
    assert named in messages(caught.value)


def test_unknown_protocol_or_mechanism_is_refused():
    with pytest.raises(ValidationError):
        KafkaSettings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError):
        KafkaSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI")


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_production_refuses_an_unencrypted_listener(protocol):
    sasl = {"kafka_sasl_mechanism": "SCRAM-SHA-512"} if protocol.startswith("SASL") else {}
    def service(**values) -> Settings:
        return Settings(**PRODUCTION, **values)

    def admin(**values) -> KafkaSettings:
        return KafkaSettings(profile="production", **values)

    for build in (service, admin):
        with pytest.raises(ValidationError) as caught:
            build(kafka_security_protocol=protocol, **sasl)
        assert "kafka_security_protocol" in messages(caught.value)
        allowed = build(kafka_security_protocol=protocol, kafka_allow_plaintext=True, **sasl)
        assert allowed.kafka_security_protocol == protocol


def test_production_accepts_tls_listeners():
    assert Settings(**PRODUCTION, kafka_security_protocol="SSL").kafka_security_protocol == "SSL"
    settings = KafkaSettings(profile="production", kafka_security_protocol="SASL_SSL",
                             kafka_sasl_mechanism="SCRAM-SHA-512")
    assert settings.kafka_security_protocol == "SASL_SSL"


def test_production_names_every_problem_at_once():
    with pytest.raises(ValidationError) as caught:
        Settings(profile="production", database_url=POSTGRES_URL)
    message = messages(caught.value)
    assert "auth_issuer" in message and "kafka_security_protocol" in message


def test_other_profiles_accept_plaintext():
    assert Settings(profile="test").kafka_security_protocol == "PLAINTEXT"
    assert KafkaSettings(profile="local").kafka_security_protocol == "PLAINTEXT"


# --- the local broker (PLAINTEXT) through the settings ------------------------------------------------------


async def test_clients_built_from_plaintext_settings_work_on_the_local_broker(kafka_broker, topic_prefix,
                                                                             tmp_path):
    settings = Settings(profile="test", var_dir=tmp_path, kafka_bootstrap_servers=kafka_broker,
                        kafka_security_protocol="PLAINTEXT")
    topic = topic_prefix + "registry"
    assert await ensure_topics(settings, [topic], partitions=1) == [topic]
    producer = new_producer(settings, client_id="test-security")
    await producer.start()
    consumer = AIOKafkaConsumer(topic, **connection_kwargs(settings), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        record = encode(new_event(ProfessionalRegistered(
            idnps="810000000001", family_name="Test", given_name="Pro", profession_code="10",
            cpts_ids=["690049999"]), source="/cpts/registry"))
        await (await producer.send(topic, value=record.value, key=record.key, headers=record.headers))

        async def received():
            return [r for batch in (await consumer.getmany(timeout_ms=300)).values() for r in batch]

        records = await eventually(received)
        assert records[0].value == record.value
    finally:
        await consumer.stop()
        await producer.stop()
