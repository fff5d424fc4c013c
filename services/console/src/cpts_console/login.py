"""How a user gets a token: demo users signed by the local issuer (embedded run), or OpenID Connect.

- Local and test profiles: `GET /auth/demo-users` lists the demo users, `POST /auth/demo-login` mints a token
  for one of them with the same local issuer as the services (`var_dir/local-issuer`).
- Production: `GET /auth/oidc/login` redirects to the identity provider (Pro Santé Connect, or Keycloak for
  the CPTS staff without a CPS card) with the authorization-code flow and PKCE; `GET /auth/oidc/callback`
  exchanges the code for tokens and hands the access token to the page, which keeps it in sessionStorage. The
  services verify that token against the issuers they trust (`CPTS_AUTH_EXTRA_ISSUERS`)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field

from cpts_console.settings import ConsoleSettings
from cpts_platform.auth import LocalIssuer, Role
from cpts_platform.logging import get_logger
from cpts_platform.problems import ProblemError, RequestModel
from cpts_platform.ratelimit import rate_limited

log = get_logger(__name__)

router = APIRouter(prefix="/auth", tags=["connexion"])

# Logins are counted per client address: they come before any token.
LOGIN_LIMIT = [Depends(rate_limited("login", by="ip"))]
TOO_MANY = {429: {"description": "Trop de connexions depuis cette adresse : réessayer après `Retry-After` "
                                  "s."}}

OIDC_COOKIE = "cpts_console_oidc"
MT_LOOKUPS = 10  # SAS participants looked up in the registry for the demo doctor


@dataclass(frozen=True)
class DemoUser:
    """A demo user of the embedded run: a role and the kind of scope it is given."""

    key: str
    label: str
    description: str
    role: Role
    scope: str  # "cpts", "departement" or "professional"


def demo_users(settings: ConsoleSettings) -> list[DemoUser]:
    d, cpts = settings.demo_departement, settings.demo_cpts_name
    return [
        DemoUser("regulatrice", f"Régulatrice SAS {d}", f"Régulation du SAS du département {d}",
                 Role.REGULATOR, "departement"),
        DemoUser("osnp", f"Opérateur de soins non programmés (OSNP) SAS {d}",
                 f"Second poste de régulation du SAS {d}", Role.REGULATOR, "departement"),
        DemoUser("secretaire", "Secrétaire de la CPTS", f"Secrétariat de la {cpts}", Role.SECRETARY, "cpts"),
        DemoUser("medecin", "Médecin généraliste", f"Médecin participant au SAS, membre de la {cpts}",
                 Role.PROFESSIONAL, "professional"),
        DemoUser("coordinatrice", "Coordinatrice", f"Coordination de la {cpts}", Role.COORDINATOR, "cpts"),
        DemoUser("ars", f"ARS {settings.demo_region_name}",
                 f"Suivi des indicateurs des CPTS du département {d}", Role.ARS, "departement"),
    ]


class DemoLoginIn(RequestModel):
    user: str = Field(max_length=40)


def _issuer(settings: ConsoleSettings) -> LocalIssuer:
    return LocalIssuer(settings.var_dir / "local-issuer", issuer=settings.auth_issuer,
                       audience=settings.auth_audience)


def _require_demo(settings: ConsoleSettings) -> None:
    if not settings.demo_login_enabled:
        raise ProblemError(403, "Demo users do not exist in production: log in with Pro Santé Connect.",
                           title="Forbidden")


@router.get("/config", summary="Comment se connecter : utilisateurs de démonstration ou OpenID Connect.")
async def config(request: Request) -> dict[str, Any]:
    settings: ConsoleSettings = request.app.state.settings
    demo = settings.demo_login_enabled
    return {"profile": settings.profile, "demo": demo, "oidc": settings.oidc_configured,
            "cpts_name": settings.demo_cpts_name if demo else None}


@router.get("/demo-users", summary="Les utilisateurs de démonstration (pile locale seulement).",
            responses={403: {"description": "Pas d'utilisateurs de démonstration en production."}})
async def list_demo_users(request: Request) -> list[dict[str, str]]:
    settings: ConsoleSettings = request.app.state.settings
    _require_demo(settings)
    return [{"key": u.key, "label": u.label, "description": u.description, "role": u.role.value}
            for u in demo_users(settings)]


@router.post("/demo-login", summary="Un jeton de l'émetteur local pour un utilisateur de démonstration.",
             dependencies=LOGIN_LIMIT,
             responses={403: {"description": "Pas d'utilisateurs de démonstration en production."},
                        404: {"description": "Utilisateur de démonstration inconnu."}, **TOO_MANY})
async def demo_login(body: DemoLoginIn, request: Request) -> dict[str, Any]:
    settings: ConsoleSettings = request.app.state.settings
    _require_demo(settings)
    user = next((u for u in demo_users(settings) if u.key == body.user), None)
    if user is None:
        raise ProblemError(404, f"No demo user {body.user!r}.",
                           errors=[{"field": "user", "in": "body", "message": "unknown demo user"}])
    issuer = _issuer(settings)
    scope: dict[str, Any] = {}
    display_name = user.label
    if user.scope == "cpts":
        scope["cpts_ids"] = [settings.demo_cpts_id]
    elif user.scope == "departement":
        scope["departements"] = [settings.demo_departement]
    else:
        doctor = await _first_sas_participant(request, settings, issuer)
        scope["idnps"] = doctor["idnps"]
        display_name = f"Dr {doctor['given_name']} {doctor['family_name']}"
    ttl = settings.demo_token_ttl_seconds
    token = issuer.mint(subject=f"demo-{user.key}" + (f"-{scope['idnps']}" if "idnps" in scope else ""),
                        roles=[user.role.value], ttl_seconds=ttl, extra={"name": display_name}, **scope)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    return {"token": token, "expires_at": expires_at.isoformat(), "name": display_name,
            "role": user.role.value}


async def _first_sas_participant(request: Request, settings: ConsoleSettings, issuer: LocalIssuer) -> dict:
    """The demo doctor: the first SAS participant of the demo CPTS with a practice site, as snp-dispatch
    knows them (ordered by IDNPS); among the first few, one who also takes new MT patients (registry) is
    preferred, so that the demo shows the proposals screen with something in it."""
    lookup = issuer.mint(subject="console-demo-login", roles=[Role.SECRETARY.value],
                         cpts_ids=[settings.demo_cpts_id], ttl_seconds=60)
    client: httpx.AsyncClient = request.app.state.http
    try:
        answer = await client.get(f"{settings.upstream_url('snp')}/effecteurs",
                                  params={"cpts_id": settings.demo_cpts_id, "sas_participant": "true",
                                          "limit": 200},
                                  headers={"Authorization": f"Bearer {lookup}"})
    except httpx.HTTPError as exc:
        raise ProblemError(502, "The snp-dispatch service cannot be reached.", title="Bad Gateway") from exc
    if answer.status_code != 200:
        raise ProblemError(502, f"snp-dispatch answered {answer.status_code} to the effecteurs lookup.",
                           title="Bad Gateway")
    effecteurs = answer.json()
    with_site = [e for e in effecteurs if e.get("sites")] or effecteurs
    if not with_site:
        raise ProblemError(503, "No SAS participant of the demo CPTS is known yet (is the demo data "
                                "seeded?).", title="Service Unavailable")
    registry = settings.upstream_url("registry")
    for effecteur in with_site[:MT_LOOKUPS]:
        try:
            detail = await client.get(f"{registry}/professionals/{effecteur['idnps']}",
                                      headers={"Authorization": f"Bearer {lookup}"})
        except httpx.HTTPError:
            break
        capacity = detail.json().get("mt_capacity") if detail.status_code == 200 else None
        if capacity and capacity.get("accepting"):
            return effecteur
    return with_site[0]


# --- OpenID Connect (production) ---------------------------------------------------------------------------


class _Discovery:
    """The identity provider's endpoints, from its discovery document (cached for an hour)."""

    def __init__(self) -> None:
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0

    async def get(self, client: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
        if self._document is None or time.monotonic() - self._fetched_at > 3600:
            url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = await client.get(url, timeout=10)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise ProblemError(502, "The identity provider's discovery document cannot be fetched.",
                                   title="Bad Gateway") from exc
            self._document = answer.json()
            self._fetched_at = time.monotonic()
        return self._document


discovery = _Discovery()


def _require_oidc(settings: ConsoleSettings) -> None:
    if not settings.oidc_configured:
        raise ProblemError(501, "OpenID Connect login is not configured: set CPTS_CONSOLE_OIDC_ISSUER, "
                                "CPTS_CONSOLE_OIDC_CLIENT_ID and CPTS_CONSOLE_OIDC_REDIRECT_URI.",
                           title="Not Implemented")


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@router.get("/oidc/login", summary="Connexion par OpenID Connect (Pro Santé Connect, Keycloak).",
            responses={302: {"description": "Vers le fournisseur d'identité."},
                       501: {"description": "Non configuré."}, **TOO_MANY}, dependencies=LOGIN_LIMIT)
async def oidc_login(request: Request) -> Response:
    settings: ConsoleSettings = request.app.state.settings
    _require_oidc(settings)
    endpoints = await discovery.get(request.app.state.http, str(settings.oidc_issuer))
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = _pkce_pair()
    query = {"response_type": "code", "client_id": settings.oidc_client_id,
             "redirect_uri": settings.oidc_redirect_uri, "scope": settings.oidc_scopes, "state": state,
             "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"}
    if settings.oidc_acr_values:
        query["acr_values"] = settings.oidc_acr_values
    response = RedirectResponse(f"{endpoints['authorization_endpoint']}?{urlencode(query)}", status_code=302)
    response.set_cookie(OIDC_COOKIE, f"{state}.{verifier}", max_age=600, httponly=True, samesite="lax",
                        secure=str(settings.oidc_redirect_uri).startswith("https://"), path="/auth/oidc")
    return response


@router.get("/oidc/callback", summary="Retour du fournisseur d'identité : échange du code contre un jeton.",
            response_class=HTMLResponse, dependencies=LOGIN_LIMIT,
            responses={400: {"description": "Session de connexion expirée ou falsifiée."},
                       401: {"description": "Le fournisseur d'identité a refusé la connexion."},
                       501: {"description": "Non configuré."},
                       502: {"description": "Le fournisseur d'identité est injoignable."}, **TOO_MANY})
async def oidc_callback(request: Request, code: Annotated[str | None, Query(max_length=2048)] = None,
                        state: Annotated[str | None, Query(max_length=256)] = None,
                        error: Annotated[str | None, Query(max_length=256)] = None) -> Response:
    settings: ConsoleSettings = request.app.state.settings
    _require_oidc(settings)
    if error:
        raise ProblemError(401, f"The identity provider refused the login ({error}).", title="Unauthorized")
    expected_state, _, verifier = (request.cookies.get(OIDC_COOKIE) or "").partition(".")
    if not code or not state or not expected_state or not secrets.compare_digest(state, expected_state):
        raise ProblemError(400, "Login session expired or forged: start again.", title="Bad Request")
    client: httpx.AsyncClient = request.app.state.http
    endpoints = await discovery.get(client, str(settings.oidc_issuer))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.oidc_redirect_uri,
            "client_id": settings.oidc_client_id, "code_verifier": verifier}
    if settings.oidc_client_secret:
        form["client_secret"] = settings.oidc_client_secret
    try:
        answer = await client.post(endpoints["token_endpoint"], data=form, timeout=10)
    except httpx.HTTPError as exc:
        raise ProblemError(502, "The identity provider cannot be reached.", title="Bad Gateway") from exc
    if answer.status_code != 200 or "access_token" not in answer.json():
        log.warning("oidc_code_exchange_failed", status=answer.status_code)
        raise ProblemError(401, "The identity provider refused the code exchange.", title="Unauthorized")
    tokens = answer.json()
    expires_at = datetime.now(UTC) + timedelta(seconds=int(tokens.get("expires_in", 300)))
    session = json.dumps({"token": tokens["access_token"], "expires_at": expires_at.isoformat()})
    # The page stores the token in sessionStorage (script from our origin: no inline script under the CSP).
    page = ("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Connexion…</title>"
            f"<meta name=\"cpts-session\" content=\"{html.escape(session)}\">"
            "<script type=\"module\" src=\"/static/js/oidc-callback.js\"></script></head>"
            "<body><p>Connexion en cours…</p></body></html>")
    response = HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    response.delete_cookie(OIDC_COOKIE, path="/auth/oidc")
    return response

