"""Bearer JWT authentication against the issuer's JWKS, roles and scopes, and the local demo issuer."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Iterable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cpts_platform.problems import ProblemError
from cpts_platform.settings import ServiceSettings, TrustedIssuer

# Asymmetric signatures only: `none` and the HMAC family (whose "secret" could be the issuer's public key) are
# refused before any key is looked up.
ALGORITHMS = ["RS256", "ES256", "PS256"]
# Claims a token must carry; `nbf` and `iat` are checked when present (30 s leeway for clock skew).
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
LEEWAY_SECONDS = 30


class Role(StrEnum):
    SECRETARY = "secretary"
    REGULATOR = "regulator"
    PROFESSIONAL = "professional"
    COORDINATOR = "coordinator"
    ARS = "ars"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling, with what role(s) and on which scope (CPTS, départements, own national id)."""

    subject: str
    roles: frozenset[Role]
    cpts_ids: frozenset[str] = field(default_factory=frozenset)
    departements: frozenset[str] = field(default_factory=frozenset)
    idnps: str | None = None

    def has_role(self, *roles: Role) -> bool:
        return Role.ADMIN in self.roles or bool(self.roles.intersection(roles))

    def can_access_cpts(self, cpts_id: str) -> bool:
        return Role.ADMIN in self.roles or cpts_id in self.cpts_ids

    def can_access_departement(self, code: str) -> bool:
        return Role.ADMIN in self.roles or code in self.departements

    def is_professional(self, idnps: str) -> bool:
        return Role.ADMIN in self.roles or self.idnps == idnps


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map token claims: `roles` (or Keycloak's `realm_access.roles`), `cpts`, `departements`, `idnps`
    (or Pro Santé Connect's `SubjectNameID`)."""
    known = {r.value for r in Role}
    roles = frozenset(Role(r) for r in claimed_roles(claims) if r in known)
    idnps = claims.get("idnps") or claims.get("SubjectNameID")
    return Principal(
        subject=str(claims.get("sub", "")),
        roles=roles,
        cpts_ids=frozenset(_as_list(claims.get("cpts"))),
        departements=frozenset(_as_list(claims.get("departements"))),
        idnps=idnps if isinstance(idnps, str) and idnps else None,
    )


def claimed_roles(claims: dict[str, Any]) -> list[str]:
    """Role names of a token, from `roles` or Keycloak's `realm_access.roles`; anything malformed is ignored."""
    raw = claims.get("roles")
    if not raw:
        realm_access = claims.get("realm_access")
        raw = realm_access.get("roles") if isinstance(realm_access, dict) else None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return []
    return [r for r in raw if isinstance(r, str)]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


class _KeySource:
    """The public keys of one issuer, from a JWKS URL (cached, refreshed on an unknown key id) or file."""

    def __init__(self, issuer: TrustedIssuer, *, refresh_seconds: float = 300.0,
                 min_refetch_seconds: float = 30.0) -> None:
        self.issuer = issuer
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._refresh_seconds = refresh_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._lock = asyncio.Lock()

    def _should_fetch(self, kid: str | None) -> bool:
        age = time.monotonic() - self._fetched_at
        # An unknown key id refetches (key rotation), but at most every `min_refetch_seconds`: tokens with
        # made-up key ids must not turn the service into a relay of requests to the identity provider.
        return age > self._refresh_seconds or (kid not in self._keys and age > self._min_refetch_seconds)

    async def key_for(self, kid: str | None) -> Any:
        if self._should_fetch(kid):
            async with self._lock:
                if self._should_fetch(kid):
                    try:
                        await self._load()
                    except Exception as exc:
                        if not self._keys:
                            raise ProblemError(503, "The identity provider's keys cannot be fetched.",
                                               title="Service Unavailable") from exc
                        self._fetched_at = time.monotonic()  # keep the known keys; retry later
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise _unauthorized("Token signed with an unknown key.")
        return self._keys[kid]

    async def _load(self) -> None:
        url = self.issuer.jwks_url
        if url.startswith("file://"):
            document = json.loads(Path(url.removeprefix("file://")).read_text())
        else:
            import httpx

            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
        jwk_set = jwt.PyJWKSet.from_dict(document)
        self._keys = {key.key_id: key.key for key in jwk_set.keys}
        self._fetched_at = time.monotonic()


class TokenVerifier:
    def __init__(self, issuers: Iterable[TrustedIssuer]) -> None:
        self._sources = {i.issuer: _KeySource(i) for i in issuers}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "TokenVerifier":
        jwks_url = settings.auth_jwks_url
        if jwks_url is None:
            local = LocalIssuer(settings.local_issuer_dir, issuer=settings.auth_issuer,
                                audience=settings.auth_audience)
            local.ensure_key()
            jwks_url = local.jwks_url
        main = TrustedIssuer(issuer=settings.auth_issuer, audience=settings.auth_audience, jwks_url=jwks_url)
        return cls([main, *settings.auth_extra_issuers])

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _unauthorized("Malformed token.")
        if header.get("alg") not in ALGORITHMS:
            raise _unauthorized("Token algorithm not accepted.")
        issuer, kid = unverified.get("iss"), header.get("kid")
        source = self._sources.get(issuer) if isinstance(issuer, str) else None
        if source is None:
            raise _unauthorized("Token from an untrusted issuer.")
        if kid is not None and not isinstance(kid, str):
            raise _unauthorized("Malformed token.")
        key = await source.key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=source.issuer.audience,
                issuer=source.issuer.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("Token expired.")
        except jwt.ImmatureSignatureError:
            raise _unauthorized("Token not valid yet.")
        except jwt.InvalidAudienceError:
            raise _unauthorized("Token audience not accepted.")
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"Token without the {exc.claim!r} claim.")
        except (jwt.PyJWTError, ValueError, TypeError):
            # Never the library's message: it may describe the key or the signature check.
            raise _unauthorized("Invalid token.")
        if not claimed_roles(claims):
            claims["roles"] = list(source.issuer.default_roles)
        return principal_from_claims(claims)


def _unauthorized(detail: str) -> ProblemError:
    """401 with the RFC 6750 challenge; the detail says what is wrong with the token, never about the keys."""
    return ProblemError(401, detail, title="Unauthorized",
                        headers={"WWW-Authenticate": 'Bearer realm="cpts", error="invalid_token"'})


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "A bearer token is required.", title="Unauthorized",
                           headers={"WWW-Authenticate": 'Bearer realm="cpts"'})
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role):
    """Dependency: the caller has one of `roles` (admin always passes); returns the Principal."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(*roles):
            raise ProblemError(403, "This role may not do this.", title="Forbidden")
        return principal

    return dependency


def ensure(allowed: bool, detail: str = "Out of your scope.") -> None:
    """Raise 403 unless a scope check holds."""
    if not allowed:
        raise ProblemError(403, detail, title="Forbidden")


class LocalIssuer:
    """Signs tokens for the demo users of the embedded run. Never trusted in production (see settings)."""

    def __init__(self, folder: Path, *, issuer: str = "cpts-local", audience: str = "cpts-platform") -> None:
        self.folder = Path(folder)
        self.issuer = issuer
        self.audience = audience

    @property
    def jwks_path(self) -> Path:
        return self.folder / "jwks.json"

    @property
    def jwks_url(self) -> str:
        return f"file://{self.jwks_path.resolve()}"

    def ensure_key(self) -> None:
        key_path = self.folder / "private-key.pem"
        if key_path.exists() and self.jwks_path.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = uuid.uuid4().hex[:16]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        # Written aside then linked into place: when several processes start at once, the first link wins.
        tmp_key = self.folder / f".private-key.{os.getpid()}.pem"
        tmp_key.write_bytes(pem)
        os.chmod(tmp_key, 0o600)
        try:
            os.link(tmp_key, key_path)
            won = True
        except FileExistsError:
            won = False
        finally:
            tmp_key.unlink(missing_ok=True)
        if won:
            tmp_jwks = self.folder / f".jwks.{os.getpid()}.json"
            tmp_jwks.write_text(json.dumps({"keys": [jwk]}, indent=2))
            os.replace(tmp_jwks, self.jwks_path)
            return
        deadline = time.monotonic() + 5
        while not self.jwks_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def mint(self, *, subject: str, roles: Iterable[str], cpts_ids: Iterable[str] = (),
             departements: Iterable[str] = (), idnps: str | None = None, ttl_seconds: int = 8 * 3600,
             extra: dict[str, Any] | None = None) -> str:
        self.ensure_key()
        private_key = serialization.load_pem_private_key((self.folder / "private-key.pem").read_bytes(), None)
        kid = json.loads(self.jwks_path.read_text())["keys"][0]["kid"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "roles": list(roles),
            "cpts": list(cpts_ids),
            "departements": list(departements),
        }
        if idnps:
            claims["idnps"] = idnps
        claims.update(extra or {})
        return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
