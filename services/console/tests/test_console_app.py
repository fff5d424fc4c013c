"""The console's server side: the page and its assets, the proxy to the services, demo login, OIDC, health."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from cpts_console.app import create_app
from cpts_console.settings import ConsoleSettings
from cpts_platform.auth import Role, TokenVerifier
from cpts_platform.settings import TrustedIssuer

DEMO_DOCTOR = {"idnps": "810000000001", "given_name": "Claire", "family_name": "Durand",
               "sites": [{"site_id": "s1"}]}
NO_SITE = {"idnps": "810000000000", "given_name": "Sans", "family_name": "Site", "sites": []}
REPORT_PAGE = ('<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Rapport annuel ACI 2026 – '
               'CPTS de l’Est</title><style>h1 { color: #000091; }</style></head><body><h1>Rapport annuel ACI '
               '2026</h1><p>CPTS de l’Est — 12 % · 1 234 €</p></body></html>')


class FakeNetwork:
    """The services and the identity provider, answering from a handler; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.effecteurs = [NO_SITE, DEMO_DOCTOR]
        self.accepting_mt: set[str] = set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.url.host == "idp.example.fr":
            return self._idp(request)
        if path == "/effecteurs":
            return httpx.Response(200, json=self.effecteurs)
        if path.startswith("/professionals/"):
            idnps = path.rsplit("/", 1)[1]
            capacity = {"accepting": True} if idnps in self.accepting_mt else None
            return httpx.Response(200, json={"idnps": idnps, "mt_capacity": capacity})
        if path == "/healthz":
            return httpx.Response(200, json={"status": "alive"})
        if path == "/down":
            raise httpx.ConnectError("refused", request=request)
        if "/report/" in path:
            return httpx.Response(200, text=REPORT_PAGE, headers={"content-type": "text/html; charset=utf-8"})
        if path.endswith("export.csv"):
            return httpx.Response(200, text="a,b\n1,2\n", headers={
                "content-type": "text/csv; charset=utf-8", "set-cookie": "upstream=1",
                "content-disposition": 'attachment; filename="x.csv"'})
        body = request.content.decode() or None
        return httpx.Response(201 if request.method == "POST" else 200, json={
            "method": request.method, "path": path, "query": request.url.query.decode(),
            "authorization": request.headers.get("authorization"),
            "body": json.loads(body) if body else None})

    def _idp(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"authorization_endpoint": "https://idp.example.fr/auth",
                                             "token_endpoint": "https://idp.example.fr/token"})
        if request.url.path == "/token":
            form = parse_qs(request.content.decode())
            if form.get("code") == ["good-code"] and form.get("code_verifier"):
                return httpx.Response(200, json={"access_token": "psc-access-token", "expires_in": 600})
            return httpx.Response(400, json={"error": "invalid_grant"})
        return httpx.Response(404)


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork()


def client_for(tmp_path: Path, network: FakeNetwork, base_url: str = "http://testserver",
               **overrides) -> TestClient:
    settings = ConsoleSettings(var_dir=tmp_path, registry_url="http://registry.test",
                               snp_dispatch_url="http://snp.test",
                               patient_matching_url="http://matching.test",
                               indicators_url="http://indicators.test", **overrides)
    return TestClient(create_app(settings, transport=httpx.MockTransport(network.handle)), base_url=base_url)


def test_the_page_and_its_assets_are_served_from_the_console_with_a_strict_csp(tmp_path, network):
    with client_for(tmp_path, network) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<html lang="fr">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "/static/js/main.js" in page.text
        assert client.get("/rendez-vous", params={"creneau": "abc"}).text == page.text
        script = client.get("/static/js/main.js").headers["content-type"]
        assert script.startswith(("text/javascript", "application/javascript"))


def test_no_asset_refers_to_another_origin():
    static = Path(__file__).parents[1] / "src" / "cpts_console" / "static"
    for path in static.rglob("*"):
        if path.suffix in {".js", ".css", ".html"}:
            text = path.read_text(encoding="utf-8")
            text = text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace, never fetched
            assert "https://" not in text and "http://" not in text, path


def test_the_proxy_forwards_method_query_body_and_the_users_token(tmp_path, network):
    with client_for(tmp_path, network) as client:
        answer = client.post("/api/snp/care-requests", params=[("x", "1"), ("x", "2")],
                             json={"origin": "sas"},
                             headers={"Authorization": "Bearer user-token", "Cookie": "secret=1"})
        assert answer.status_code == 201
        seen = answer.json()
        assert seen == {"method": "POST", "path": "/care-requests", "query": "x=1&x=2",
                        "authorization": "Bearer user-token", "body": {"origin": "sas"}}
        assert "cookie" not in network.requests[-1].headers
        assert str(network.requests[-1].url).startswith("http://snp.test/care-requests")
        for prefix, host in [("registry", "registry.test"), ("matching", "matching.test"),
                             ("indicators", "indicators.test")]:
            client.delete(f"/api/{prefix}/a/b")
            assert network.requests[-1].url.host == host and network.requests[-1].method == "DELETE"


def test_the_proxy_passes_downloads_but_not_the_upstreams_cookies(tmp_path, network):
    with client_for(tmp_path, network) as client:
        answer = client.get("/api/indicators/indicators/cpts/690049999/export.csv")
        assert answer.text == "a,b\n1,2\n"
        assert answer.headers["content-disposition"] == 'attachment; filename="x.csv"'
        assert "set-cookie" not in answer.headers


def test_the_proxy_passes_an_html_page_unchanged_with_the_users_token(tmp_path, network):
    """The annual report is a printable HTML page: the console fetches it with the token and shows it."""
    with client_for(tmp_path, network) as client:
        answer = client.get("/api/indicators/indicators/cpts/690049999/report/2026",
                            headers={"Authorization": "Bearer user-token", "Accept": "text/html"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.content == REPORT_PAGE.encode()
        assert network.requests[-1].headers["authorization"] == "Bearer user-token"
        assert network.requests[-1].headers["accept"] == "text/html"


def test_an_unknown_service_is_404_and_an_unreachable_one_502_as_problems(tmp_path, network):
    with client_for(tmp_path, network) as client:
        unknown = client.get("/api/billing/x")
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
        down = client.get("/api/registry/down")
        assert down.status_code == 502 and "registry" in down.json()["detail"]


def test_demo_users_get_tokens_the_services_accept_with_their_role_and_scope(tmp_path, network):
    with client_for(tmp_path, network) as client:
        users = {u["key"]: u for u in client.get("/auth/demo-users").json()}
        assert {"regulatrice", "osnp", "secretaire", "medecin", "coordinatrice", "ars"} <= set(users)
        assert users["ars"]["label"] == "ARS Auvergne-Rhône-Alpes"
        tokens = {key: client.post("/auth/demo-login", json={"user": key}).json() for key in users}
    verifier = TokenVerifier([TrustedIssuer(issuer="cpts-local", audience="cpts-platform",
                                            jwks_url=f"file://{tmp_path / 'local-issuer' / 'jwks.json'}")])

    def principal(key: str):
        return asyncio.run(verifier.verify(tokens[key]["token"]))

    regulator = principal("regulatrice")
    assert regulator.roles == {Role.REGULATOR} and regulator.departements == {"69"}
    assert principal("secretaire").cpts_ids == {"690049999"}
    assert principal("ars").roles == {Role.ARS} and not principal("ars").cpts_ids
    doctor = principal("medecin")
    assert doctor.roles == {Role.PROFESSIONAL} and doctor.idnps == DEMO_DOCTOR["idnps"]
    assert tokens["medecin"]["name"] == "Dr Claire Durand"
    lookup = next(r for r in network.requests if r.url.path == "/effecteurs")
    assert parse_qs(lookup.url.query.decode())["cpts_id"] == ["690049999"]


def test_the_demo_doctor_is_preferably_a_participant_taking_new_mt_patients(tmp_path, network):
    second = {**DEMO_DOCTOR, "idnps": "810000000002", "given_name": "Paul"}
    network.effecteurs = [NO_SITE, DEMO_DOCTOR, second]
    network.accepting_mt = {second["idnps"]}
    with client_for(tmp_path, network) as client:
        assert client.post("/auth/demo-login", json={"user": "medecin"}).json()["name"] == "Dr Paul Durand"
        network.accepting_mt = set()
        assert client.post("/auth/demo-login", json={"user": "medecin"}).json()["name"] == "Dr Claire Durand"


def test_an_unknown_demo_user_is_404(tmp_path, network):
    with client_for(tmp_path, network) as client:
        assert client.post("/auth/demo-login", json={"user": "root"}).status_code == 404


def test_production_refuses_demo_users_and_answers_501_while_oidc_is_not_configured(tmp_path, network):
    with client_for(tmp_path, network, profile="production") as client:
        assert client.get("/auth/config").json()["demo"] is False
        assert client.get("/auth/demo-users").status_code == 403
        assert client.post("/auth/demo-login", json={"user": "regulatrice"}).status_code == 403
        assert not (tmp_path / "local-issuer").exists()
        missing = client.get("/auth/oidc/login", follow_redirects=False)
        assert missing.status_code == 501 and "CPTS_CONSOLE_OIDC_ISSUER" in missing.json()["detail"]


def test_oidc_login_redirects_with_pkce_and_the_callback_exchanges_the_code(tmp_path, network):
    oidc = {"profile": "production", "oidc_issuer": "https://idp.example.fr/realms/cpts",
            "oidc_client_id": "console", "oidc_redirect_uri": "https://console.example.fr/auth/oidc/callback"}
    with client_for(tmp_path, network, base_url="https://testserver", **oidc) as client:
        start = client.get("/auth/oidc/login", follow_redirects=False)
        assert start.status_code == 302
        target = urlparse(start.headers["location"])
        query = parse_qs(target.query)
        assert target.netloc == "idp.example.fr" and query["client_id"] == ["console"]
        assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
        state = query["state"][0]
        forged = client.get("/auth/oidc/callback", params={"code": "good-code", "state": "forged"})
        assert forged.status_code == 400
        done = client.get("/auth/oidc/callback", params={"code": "good-code", "state": state})
        assert done.status_code == 200 and "psc-access-token" in done.text
        assert "/static/js/oidc-callback.js" in done.text and done.headers["cache-control"] == "no-store"
        exchange = next(r for r in network.requests if r.url.path == "/token")
        assert parse_qs(exchange.content.decode())["redirect_uri"] == [oidc["oidc_redirect_uri"]]


def test_production_refuses_a_plain_http_identity_provider(tmp_path):
    with pytest.raises(ValueError, match="https"):
        ConsoleSettings(var_dir=tmp_path, profile="production", oidc_issuer="http://idp", oidc_client_id="c",
                        oidc_redirect_uri="https://console/cb")


def test_commune_points_for_the_map_come_from_the_shared_table(tmp_path, network):
    with client_for(tmp_path, network) as client:
        points = client.get("/geo/communes", params=[("insee", "69266"), ("insee", "69259")]).json()
        assert [p["name"] for p in points] == ["Villeurbanne", "Vénissieux"]
        assert all(45 < p["lat"] < 46 and 4 < p["lon"] < 6 for p in points)
        assert client.get("/geo/communes", params={"insee": "99999"}).status_code == 404


def test_health_and_readiness_report_the_services_without_depending_on_them(tmp_path, network):
    with client_for(tmp_path, network) as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["upstreams"]["registry"] == "ok"
        assert client.get("/metrics").status_code == 200
