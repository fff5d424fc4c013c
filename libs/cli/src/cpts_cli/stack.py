"""`cpts run`: the whole platform on the embedded defaults, each service in its own process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cpts_cli import demo
from cpts_cli.services import load_services, load_web_apps
from cpts_platform.auth import LocalIssuer
from cpts_platform.db import Database
from cpts_platform.dev.broker import LocalBroker, port_open
from cpts_platform.kafka import ensure_topics, new_producer, platform_topics
from cpts_platform.migrations import upgrade
from cpts_platform.outbox import replay


def _say(message: str) -> None:
    print(message, flush=True)


async def prepare(*, bootstrap: str, fresh_broker: bool) -> None:
    """Topics, migrations, and (into a fresh memory-only broker) the replay of every outbox history."""
    await ensure_topics(bootstrap, platform_topics())
    for name, definition in load_services().items():
        settings = definition.settings_class()
        database = Database(settings.database_url, definition.tables)
        try:
            await upgrade(database, definition.migrations, definition.metadata)
            if fresh_broker:
                producer = new_producer(bootstrap, client_id=f"{name}-replay")
                await producer.start()
                try:
                    count = await replay(database=database, producer=producer)
                finally:
                    await producer.stop()
                if count:
                    _say(f"  {name}: {count} événements republiés depuis l'outbox")
        finally:
            await database.dispose()


def run_stack(*, var_dir: Path, seed: bool, ready_timeout: float = 60.0) -> int:
    var_dir = var_dir.resolve()
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    os.environ["CPTS_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("CPTS_PROFILE", "local")
    services = load_services()
    web_apps = load_web_apps()
    bootstrap = os.environ.get("CPTS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    issuer = LocalIssuer(var_dir / "local-issuer")
    issuer.ensure_key()

    broker: LocalBroker | None = None
    children: list[tuple[str, subprocess.Popen]] = []

    def shutdown(*_: object) -> None:
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker:
            broker.stop()

    try:
        if port_open(host, int(port)):
            _say(f"Broker Kafka déjà à l'écoute sur {bootstrap} : réutilisé.")
            fresh = False
        else:
            broker = LocalBroker(host=host, port=int(port), log_path=var_dir / "log" / "broker.log")
            broker.start()
            _say(f"Broker Kafka local démarré sur {bootstrap} (mémoire seule).")
            fresh = True
        _say("Topics, migrations et reprise de l'historique...")
        asyncio.run(prepare(bootstrap=bootstrap, fresh_broker=fresh))

        urls = {name: f"http://127.0.0.1:{d.settings_class().http_port}" for name, d in services.items()}
        for app_name in web_apps:  # the console reaches each service at the URL it really listens on
            for name, url in urls.items():
                os.environ.setdefault(f"CPTS_{app_name.upper()}_{name.upper().replace('-', '_')}_URL", url)
        for name in [*services, *web_apps]:
            log = open(var_dir / "log" / f"{name}.log", "ab")
            child = subprocess.Popen([sys.executable, "-m", "cpts_cli.main", "serve", name],
                                     stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            children.append((name, child))

        app_urls = {name: f"http://127.0.0.1:{w.settings_class().http_port}" for name, w in web_apps.items()}
        deadline = time.monotonic() + ready_timeout
        pending = {**urls, **app_urls}
        while pending and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                child = dict(children)[name]
                if child.poll() is not None:
                    raise RuntimeError(f"{name} exited (code {child.returncode}); see {var_dir}/log/{name}.log")
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready after {ready_timeout:.0f} s: {', '.join(pending)}")

        if seed:
            _say("Données de démonstration : import de l'extrait RPPS du territoire...")
            demo.import_demo_extract(var_dir)
            token = issuer.mint(subject="demo-admin", roles=["admin"], ttl_seconds=600)
            figures = demo.seed(urls["registry"], token)
            if figures["members"]:
                _say(f"  {demo.DEMO_CPTS_NAME} : {figures['members']} membres, {figures['sas_participants']} "
                     f"participants au SAS, {figures['mt_capacities']} médecins acceptant de nouveaux patients.")
            else:
                _say(f"  {demo.DEMO_CPTS_NAME} déjà en place (données conservées).")
            slots = demo.seed_slots(urls["snp-dispatch"], token, participants=figures["sas_participants"])
            _say(f"  Créneaux de soins non programmés publiés : {slots['slots']} nouveaux, pour "
                 f"{slots['effecteurs']} effecteurs.")
            patients = demo.seed_patients(urls["patient-matching"], token)
            if patients["patients"]:
                _say(f"  Patients sans médecin traitant inscrits au guichet : {patients['patients']}.")

        _say("\nPlateforme prête :")
        for name, url in app_urls.items():
            _say(f"  {name:<17} {url}   (application web : utilisateurs de démonstration)")
        for name, url in urls.items():
            _say(f"  {name:<17} {url}   (API : {url}/docs)")
        _say(f"\nJournaux : {var_dir}/log/   Données : {var_dir}/")
        _say("Jetons de démonstration : .venv/bin/cpts token --role coordinator --cpts "
             f"{demo.DEMO_CPTS_ID}")
        _say(f"                          .venv/bin/cpts token --role regulator --departement {demo.DEMO_DEPARTEMENT}")
        _say("Arrêt : Ctrl-C\n")

        stop = {"now": False}

        def on_signal(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop["now"]:
            for name, child in children:
                if child.poll() is not None:
                    _say(f"{name} s'est arrêté (code {child.returncode}) ; voir {var_dir}/log/{name}.log")
                    stop["now"] = True
            time.sleep(0.5)
        _say("Arrêt des services...")
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        shutdown()
