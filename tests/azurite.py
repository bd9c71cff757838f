"""Session fixture: a real Azurite blob endpoint on a free loopback port, with its data in a temporary folder.

Stopped by its own process id. Import it into a test module or conftest.py: `from tests.azurite import azurite`.
The fixture yields an object with `connection_string` (the public Azurite development account).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"
# The well-known development account of Azurite (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class AzuriteEndpoint:
    host: str
    port: int
    location: Path

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint=http://{self.host}:{self.port}/{ACCOUNT};")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite-blob exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"azurite-blob did not listen on {host}:{port} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    if not AZURITE_BLOB.exists():
        pytest.fail(f"{AZURITE_BLOB} is missing: run `make system-deps` (npm ci) first")
    endpoint = AzuriteEndpoint("127.0.0.1", free_port(), tmp_path_factory.mktemp("azurite-data"))
    log = (endpoint.location / "azurite.log").open("w")
    process = subprocess.Popen(
        [str(AZURITE_BLOB), "--blobHost", endpoint.host, "--blobPort", str(endpoint.port), "--loose",
         "--skipApiVersionCheck", "--disableTelemetry", "--location", str(endpoint.location)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_for_port(endpoint.host, endpoint.port, process)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
