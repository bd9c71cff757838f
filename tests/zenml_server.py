"""Session fixture: a real ZenML server (uvicorn, NO_AUTH) on a free loopback port, with its own SQLite store.

Clients reach it by setting ZENML_STORE_URL to `server.url` and their own ZENML_CONFIG_PATH; no login is needed
with NO_AUTH. Stopped by its process id.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_ENV
from tests.ports import free_port


@dataclass
class ZenMLServer:
    url: str
    config_path: Path
    pid: int


@pytest.fixture(scope="session")
def zenml_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("zenml-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_TRACKING"))}
    env.update(OFFLINE_ENV)
    env.update({
        "ZENML_CONFIG_PATH": str(base / "config"),
        "ZENML_SERVER": "true",
        "ZENML_SERVER_AUTH_SCHEME": "NO_AUTH",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",  # creates the `default` user that NO_AUTH clients act as
    })
    log = (base / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, base / "server.log")
        yield ZenMLServer(url=url, config_path=base / "config", pid=process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ZenML server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        connection = http.client.HTTPConnection(*url.removeprefix("http://").split(":"), timeout=2)
        try:
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.3)
        finally:
            connection.close()
    raise RuntimeError(f"ZenML server at {url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")
