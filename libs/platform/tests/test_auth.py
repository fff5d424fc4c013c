"""Bearer-token authentication and authorisation, through the registry service with its lifespan running."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cpts_platform.auth import LocalIssuer, Principal, Role, principal_from_claims
from cpts_platform.problems import PROBLEM_JSON
from cpts_platform.testing import running_service, settings_for
from cpts_registry.app import service

CPTS_A = "690049999"
CPTS_B = "690048888"

module_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Registry:
    client: httpx.AsyncClient
    issuer: LocalIssuer

    def token(self, roles=("coordinator",), *, cpts_ids=(CPTS_A,), **kwargs) -> str:
        return self.issuer.mint(subject=f"user-{uuid.uuid4().hex[:6]}", roles=list(roles), cpts_ids=cpts_ids,
                                **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory, kafka_broker: str):
    base = tmp_path_factory.mktemp("auth")
    var_dir = base / "var"
    settings = settings_for(service, database_url=f"sqlite+aiosqlite:///{base / 't.db'}", kafka_broker=kafka_broker,
                            topic_prefix=f"t{uuid.uuid4().hex[:10]}.", var_dir=var_dir)
    # The service's verifier trusts the key the local issuer keeps under var_dir/local-issuer.
    issuer = LocalIssuer(var_dir / "local-issuer")
    async with running_service(service, settings) as client:
        await register_cpts(client, LocalIssuer(var_dir / "local-issuer"))
        yield Registry(client=client, issuer=issuer)


async def register_cpts(client, issuer) -> None:
    """The CPTS the tests' professionals belong to must exist in the registry."""
    admin = {"Authorization": f"Bearer {issuer.mint(subject='admin', roles=['admin'])}"}
    for cpts_id, commune in (("690049999", "69259"), ("690048888", "69290")):
        response = await client.post("/cpts", json={"cpts_id": cpts_id, "name": f"CPTS {cpts_id}",
                                                    "communes": [commune]}, headers=admin)
        assert response.status_code == 201, response.text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def professional(idnps: str, *cpts_ids: str) -> dict:
    return {"idnps": idnps, "family_name": "Martin", "given_name": "Claire", "profession_code": "10",
            "cpts_ids": list(cpts_ids)}


def fresh_idnps() -> str:
    return "8" + str(uuid.uuid4().int)[:11]


def valid_claims(issuer: LocalIssuer, **overrides) -> dict:
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "intruder", "iat": now, "nbf": now,
              "exp": now + 3600, "roles": ["admin"], "cpts": [CPTS_A]}
    claims.update(overrides)
    return claims


def local_kid(issuer: LocalIssuer) -> str:
    issuer.ensure_key()
    return json.loads(issuer.jwks_path.read_text())["keys"][0]["kid"]


# --- authentication -----------------------------------------------------------------------------------------


@module_loop
async def test_request_without_token_is_401_problem(registry: Registry):
    body = assert_problem(await registry.client.get("/professionals"), 401)
    assert body["instance"] == "/professionals"


@module_loop
async def test_non_bearer_scheme_is_401(registry: Registry):
    response = await registry.client.get("/professionals", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(response, 401)


@module_loop
async def test_coordinator_with_valid_token_lists_professionals(registry: Registry):
    response = await registry.client.get("/professionals", headers=bearer(registry.token()))
    assert response.status_code == 200, response.text
    assert response.json()["limit"] == 50


@module_loop
async def test_keycloak_style_token_roles_are_accepted(registry: Registry):
    token = registry.issuer.mint(subject="kc-user", roles=[], extra={"realm_access": {"roles": ["regulator"]}})
    response = await registry.client.get("/professionals", headers=bearer(token))
    assert response.status_code == 200, response.text


@module_loop
async def test_expired_token_is_401(registry: Registry):
    response = await registry.client.get("/professionals", headers=bearer(registry.token(ttl_seconds=-120)))
    body = assert_problem(response, 401)
    assert "expired" in body["detail"].lower()


@module_loop
async def test_token_for_another_audience_is_401(registry: Registry):
    other = LocalIssuer(registry.issuer.folder, audience="other")
    token = other.mint(subject="u", roles=["coordinator"], cpts_ids=[CPTS_A])
    body = assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)
    assert "audience" in body["detail"].lower()


@module_loop
async def test_token_from_untrusted_issuer_is_401_even_with_the_trusted_key(registry: Registry):
    other = LocalIssuer(registry.issuer.folder, issuer="https://evil.example")
    token = other.mint(subject="u", roles=["coordinator"], cpts_ids=[CPTS_A])
    body = assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)
    assert "issuer" in body["detail"].lower()


@module_loop
async def test_unsigned_alg_none_token_is_401(registry: Registry):
    claims = valid_claims(registry.issuer)
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": local_kid(registry.issuer)})
    assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)
    # Hand-made variant, with a capitalised "None" and an empty signature.
    header = b64url(json.dumps({"alg": "None", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    assert_problem(await registry.client.get("/professionals", headers=bearer(f"{header}.{payload}.")), 401)


@module_loop
async def test_hs256_token_keyed_with_the_public_jwk_is_401(registry: Registry):
    """Algorithm confusion: the public key used as an HMAC secret must not verify."""
    # Crafted by hand: pyjwt itself refuses to use a public key as an HMAC secret.
    public_jwk = json.loads(registry.issuer.jwks_path.read_text())["keys"][0]
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(public_jwk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": local_kid(registry.issuer)}).encode())
    payload = b64url(json.dumps(valid_claims(registry.issuer)).encode())
    signature = b64url(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    token = f"{header}.{payload}.{signature}"
    body = assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)
    assert "algorithm" in body["detail"].lower()


@module_loop
async def test_tampered_payload_is_401(registry: Registry):
    token = registry.token(roles=["ars"])
    header, payload, signature = token.split(".")
    # A meaningful forgery: same signature, payload rewritten to grant admin.
    claims = json.loads(b64url_decode(payload))
    claims["roles"] = ["admin"]
    forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_problem(await registry.client.get("/professionals", headers=bearer(forged)), 401)
    # A single flipped character of the payload part.
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    assert_problem(await registry.client.get("/professionals", headers=bearer(f"{header}.{flipped}.{signature}")),
                   401)
    # And the untouched token still works (the rejection is due to the tampering).
    assert (await registry.client.get("/professionals", headers=bearer(token))).status_code == 200


@module_loop
async def test_token_signed_by_another_key_with_the_trusted_kid_is_401(registry: Registry):
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_claims(registry.issuer), rogue, algorithm="RS256",
                       headers={"kid": local_kid(registry.issuer)})
    assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)


@module_loop
async def test_token_with_unknown_kid_is_401(registry: Registry):
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_claims(registry.issuer), rogue, algorithm="RS256", headers={"kid": "not-a-known-kid"})
    body = assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)
    assert "key" in body["detail"].lower()


@module_loop
async def test_token_without_expiry_is_401(registry: Registry):
    claims = valid_claims(registry.issuer)
    del claims["exp"]
    private_key_pem = (registry.issuer.folder / "private-key.pem").read_bytes()
    token = jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": local_kid(registry.issuer)})
    assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 401)


@module_loop
async def test_garbage_token_is_401(registry: Registry):
    assert_problem(await registry.client.get("/professionals", headers=bearer("not.a.jwt")), 401)


# --- authorisation ------------------------------------------------------------------------------------------


@module_loop
async def test_ars_may_read_but_not_register(registry: Registry):
    token = registry.token(roles=["ars"])
    assert (await registry.client.get("/professionals", headers=bearer(token))).status_code == 200
    response = await registry.client.post("/professionals", json=professional(fresh_idnps(), CPTS_A),
                                          headers=bearer(token))
    assert_problem(response, 403)


@module_loop
async def test_token_without_known_role_is_403(registry: Registry):
    token = registry.token(roles=["superuser"])
    assert_problem(await registry.client.get("/professionals", headers=bearer(token)), 403)


@module_loop
async def test_coordinator_registers_only_in_own_cpts(registry: Registry):
    token = registry.token(roles=["coordinator"], cpts_ids=[CPTS_A])
    idnps = fresh_idnps()
    response = await registry.client.post("/professionals", json=professional(idnps, CPTS_B), headers=bearer(token))
    body = assert_problem(response, 403)
    assert CPTS_B in body["detail"]
    # A mixed list (own CPTS plus another) is refused too, and nothing was registered.
    response = await registry.client.post("/professionals", json=professional(idnps, CPTS_A, CPTS_B),
                                          headers=bearer(token))
    assert_problem(response, 403)
    assert_problem(await registry.client.get(f"/professionals/{idnps}", headers=bearer(token)), 404)
    # In its own CPTS, the same coordinator succeeds.
    response = await registry.client.post("/professionals", json=professional(idnps, CPTS_A), headers=bearer(token))
    assert response.status_code == 201, response.text
    assert response.json()["cpts_ids"] == [CPTS_A]


@module_loop
async def test_admin_registers_in_any_cpts(registry: Registry):
    token = registry.token(roles=["admin"], cpts_ids=[])
    response = await registry.client.post("/professionals", json=professional(fresh_idnps(), CPTS_B),
                                          headers=bearer(token))
    assert response.status_code == 201, response.text


@module_loop
async def test_health_and_metrics_need_no_token(registry: Registry):
    healthz = await registry.client.get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "alive"}
    metrics = await registry.client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_request" in metrics.text


# --- claims mapping -----------------------------------------------------------------------------------------


def test_principal_from_keycloak_realm_access_roles():
    principal = principal_from_claims({
        "sub": "kc-123", "realm_access": {"roles": ["coordinator", "offline_access", "uma_authorization"]},
        "cpts": CPTS_A, "departements": ["69", "01"],
    })
    assert principal == Principal(subject="kc-123", roles=frozenset({Role.COORDINATOR}),
                                  cpts_ids=frozenset({CPTS_A}), departements=frozenset({"69", "01"}))
    assert principal.can_access_cpts(CPTS_A) and not principal.can_access_cpts(CPTS_B)


def test_top_level_roles_take_precedence_over_realm_access():
    principal = principal_from_claims({"sub": "s", "roles": "ars", "realm_access": {"roles": ["admin"]}})
    assert principal.roles == frozenset({Role.ARS})
    assert not principal.has_role(Role.COORDINATOR)


def test_principal_from_pro_sante_connect_subject_name_id():
    principal = principal_from_claims({"sub": "psc-sub", "SubjectNameID": "810001234567", "roles": ["professional"]})
    assert principal.idnps == "810001234567"
    assert principal.is_professional("810001234567")
    assert not principal.is_professional("810009999999")
    assert principal.roles == frozenset({Role.PROFESSIONAL})


def test_explicit_idnps_claim_wins_over_subject_name_id():
    principal = principal_from_claims({"sub": "s", "idnps": "012345678", "SubjectNameID": "810001234567"})
    assert principal.idnps == "012345678"


def test_claims_without_roles_give_no_rights():
    principal = principal_from_claims({"sub": "nobody"})
    assert principal.roles == frozenset()
    assert principal.idnps is None
    assert not principal.has_role(*Role)
    assert not principal.can_access_cpts(CPTS_A)


def test_admin_passes_every_check():
    principal = principal_from_claims({"sub": "root", "roles": ["admin"]})
    assert principal.has_role(Role.COORDINATOR)
    assert principal.can_access_cpts(CPTS_B)
    assert principal.can_access_departement("75")
    assert principal.is_professional("810001234567")


@module_loop
async def test_signed_token_with_odd_role_claims_is_refused_not_a_server_error(registry: Registry):
    for extra in ({"realm_access": None}, {"roles": 5}):
        token = registry.issuer.mint(subject="odd", roles=[], extra=extra)
        response = await registry.client.get("/professionals", headers=bearer(token))
        assert response.status_code in (401, 403), (extra, response.status_code)


async def test_unreachable_issuer_keys_answer_503_not_500(tmp_path):
    from cpts_platform.auth import _KeySource
    from cpts_platform.problems import ProblemError
    from cpts_platform.settings import TrustedIssuer

    source = _KeySource(TrustedIssuer(issuer="x", audience="y", jwks_url=f"file://{tmp_path}/missing.json"))
    with pytest.raises(ProblemError) as caught:
        await source.key_for("kid")
    assert caught.value.status == 503


async def test_made_up_key_ids_do_not_refetch_the_issuer_keys_on_every_request(tmp_path):
    from cpts_platform.auth import LocalIssuer, _KeySource
    from cpts_platform.problems import ProblemError
    from cpts_platform.settings import TrustedIssuer

    issuer = LocalIssuer(tmp_path / "issuer")
    issuer.ensure_key()
    source = _KeySource(TrustedIssuer(issuer="x", audience="y", jwks_url=issuer.jwks_url))
    loads = 0
    original = source._load

    async def counting_load():
        nonlocal loads
        loads += 1
        await original()

    source._load = counting_load
    for kid in ("a", "b", "c"):
        with pytest.raises(ProblemError):
            await source.key_for(kid)
    assert loads == 1
