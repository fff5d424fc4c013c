"""Hostile bearer tokens against every service: each one is a 401 problem with a `WWW-Authenticate: Bearer`
challenge that says nothing about the keys; a valid token passes.

Each service runs in-process with its lifespan (its token verifier trusts the local issuer's key under its
var_dir), on SQLite: token checks come before any database work, the same on PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cpts_platform.auth import LocalIssuer
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.testing import running_service, settings_for

CPTS = "690049999"

# Every service, with a protected read any admin may do on an empty database.
SERVICES = {
    "registry": ("cpts_registry.app", "/cpts"),
    "snp-dispatch": ("cpts_snp_dispatch.app", "/effecteurs"),
    "patient-matching": ("cpts_patient_matching.app", f"/cpts/{CPTS}/rounds"),
    "indicators": ("cpts_indicators.app", "/indicators/catalogue"),
}

module_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Target:
    name: str
    client: httpx.AsyncClient
    issuer: LocalIssuer
    path: str

    @property
    def private_key(self):
        return serialization.load_pem_private_key((self.issuer.folder / "private-key.pem").read_bytes(), None)

    @property
    def jwk(self) -> dict:
        return json.loads(self.issuer.jwks_path.read_text())["keys"][0]

    def claims(self, **changes) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer.issuer, "aud": self.issuer.audience, "sub": "hostile", "iat": now,
                  "nbf": now, "exp": now + 600, "roles": ["admin"], "jti": uuid.uuid4().hex}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def signed(self, claims: dict, *, key=None, kid: str | None = "trusted") -> str:
        headers = {"kid": self.jwk["kid"] if kid == "trusted" else kid}
        return jwt.encode(claims, key or self.private_key, algorithm="RS256", headers=headers)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(SERVICES))
async def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kafka_broker: str):
    import importlib

    module, path = SERVICES[request.param]
    definition = importlib.import_module(module).service
    base = tmp_path_factory.mktemp(f"tokens-{request.param}")
    settings = settings_for(definition, database_url=f"sqlite+aiosqlite:///{base / 'db.sqlite'}",
                            kafka_broker=kafka_broker, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                            var_dir=base / "var")
    issuer = LocalIssuer(base / "var" / "local-issuer")
    issuer.ensure_key()
    async with running_service(definition, settings) as client:
        yield Target(name=request.param, client=client, issuer=issuer, path=path)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict, claims: dict) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def raw_signed(t: Target, claims: dict) -> str:
    """RS256 by hand with the trusted key: for claims the JWT library refuses to encode."""
    signing_input = segments({"alg": "RS256", "typ": "JWT", "kid": t.jwk["kid"]}, claims)
    signature = t.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def _none(t: Target) -> str:
    # Crafted by hand: an unsigned token naming the trusted key.
    return segments({"alg": "none", "typ": "JWT", "kid": t.jwk["kid"]}, t.claims()) + "."


def _hs256_with_public_key(t: Target) -> str:
    # Algorithm confusion: HMAC keyed with the issuer's public key (PEM), which anyone can fetch.
    public_pem = t.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = segments({"alg": "HS256", "typ": "JWT", "kid": t.jwk["kid"]}, t.claims())
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def _tampered(t: Target) -> str:
    header, _, signature = t.signed(t.claims(roles=["ars"])).split(".")
    return f"{header}.{b64url(json.dumps(t.claims(roles=['admin'])).encode())}.{signature}"


def _rogue_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


HOSTILE: dict[str, tuple[Callable[[Target], dict[str, str]], str | None]] = {
    # name: (request headers, a word the detail must contain, or None)
    "no token": (lambda t: {}, "required"),
    "basic scheme": (lambda t: {"Authorization": "Basic dXNlcjpwYXNz"}, "required"),
    "garbage": (lambda t: {"Authorization": "Bearer not-a-jwt"}, "malformed"),
    "expired": (lambda t: {"Authorization": "Bearer " + t.signed(
        t.claims(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 600))},
        "expired"),
    "not yet valid": (lambda t: {"Authorization": "Bearer " + t.signed(
        t.claims(nbf=int(time.time()) + 3600))}, "not valid yet"),
    "wrong audience": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(aud="another-platform"))},
                       "audience"),
    "wrong issuer": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(iss="https://evil.example"))},
                     "issuer"),
    "issuer not a string": (lambda t: {"Authorization": "Bearer " + raw_signed(
        t, t.claims(iss=["cpts-local"]))}, "issuer"),
    "alg none": (lambda t: {"Authorization": "Bearer " + _none(t)}, "algorithm"),
    "hs256 keyed with the public key": (lambda t: {"Authorization": "Bearer " + _hs256_with_public_key(t)},
                                        "algorithm"),
    "tampered payload": (lambda t: {"Authorization": "Bearer " + _tampered(t)}, None),
    "unknown key with the trusted kid": (
        lambda t: {"Authorization": "Bearer " + t.signed(t.claims(), key=_rogue_key())}, None),
    "unknown kid": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(), key=_rogue_key(),
                                                                     kid="not-a-known-kid")}, "unknown key"),
    "kid not a string": (lambda t: {"Authorization": "Bearer " + segments(
        {"alg": "RS256", "typ": "JWT", "kid": 42}, t.claims()) + ".c2ln"}, "malformed"),
    "missing exp": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(exp=None))}, "exp"),
    "missing iat": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(iat=None))}, "iat"),
    "missing sub": (lambda t: {"Authorization": "Bearer " + t.signed(t.claims(sub=None))}, "sub"),
}


def _assert_refused(t: Target, response: httpx.Response, word: str | None) -> None:
    assert response.status_code == 401, f"{t.name}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["detail"]
    if word:
        assert word in body["detail"].lower(), body["detail"]
    # Nothing about the keys: no key id, no key material, no library message about the signature check.
    text = response.text
    jwk = t.jwk
    for secret in (jwk["kid"], jwk["n"][:20], "BEGIN", "not-a-known-kid", "Signature verification"):
        assert secret not in text, f"{t.name}: {secret!r} in {text}"


@module_loop
@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_token_is_401_with_a_bearer_challenge(target: Target, case: str):
    make_headers, word = HOSTILE[case]
    response = await target.client.get(target.path, headers=make_headers(target))
    _assert_refused(target, response, word)


@module_loop
async def test_a_token_within_the_clock_leeway_is_accepted(target: Target):
    now = int(time.time())
    token = target.signed(target.claims(nbf=now + 10, iat=now + 10))
    response = await target.client.get(target.path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


@module_loop
async def test_a_valid_token_passes(target: Target):
    token = target.issuer.mint(subject="admin", roles=["admin"])
    response = await target.client.get(target.path, headers={"Authorization": f"Bearer {token}"})
    assert 200 <= response.status_code < 300, f"{target.name}: {response.status_code} {response.text}"
