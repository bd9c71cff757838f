"""Azurite, the Azure Blob Storage emulator (npm package `azurite`), on 127.0.0.1 for the `azurite` stack.

`python run.py --stack azurite` calls `ensure_running()`; `python run.py azurite start|stop|status` and the test
fixtures use the same functions. A started Azurite keeps running after run.py exits (the ZenML artifacts live in
it); its process id sits in `<data dir>/azurite.pid` and `stop` ends exactly that process.

Settings come from the environment: AZURITE_BLOB_HOST (127.0.0.1), AZURITE_BLOB_PORT (10000),
AZURITE_LOCATION (data folder, default `<ZenML config>/local_stores/azurite`).
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import psutil

from heartml.core.errors import InputError
from heartml.platform.paths import PROJECT_ROOT, local_stores_dir
from heartml.platform.processes import SavedProcess, stop_process

ACCOUNT_NAME = "devstoreaccount1"
# The well-known development key that Microsoft publishes for Azurite and the storage emulator; Azurite accepts
# only this key for devstoreaccount1. Not a secret, but it still travels as one (ZenML secret `azurite_storage`).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PID_FILE = "azurite.pid"
LOG_FILE = "azurite.log"


class AzuriteError(InputError):
    """Azurite cannot be used: not installed, port taken by another program, did not start."""


@dataclass(frozen=True)
class Azurite:
    host: str
    port: int
    location: Path

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    @property
    def pid_file(self) -> Path:
        return self.location / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.location / LOG_FILE


def default_location() -> Path:
    return local_stores_dir() / "azurite"


def from_env() -> Azurite:
    port = os.environ.get("AZURITE_BLOB_PORT") or "10000"
    if not port.isdigit():
        raise AzuriteError(f"AZURITE_BLOB_PORT={port!r}: not a port number")
    location = os.environ.get("AZURITE_LOCATION")
    return Azurite(host=os.environ.get("AZURITE_BLOB_HOST") or "127.0.0.1", port=int(port),
                   location=Path(location).resolve() if location else default_location())


def probe(host: str, port: int, timeout: float = 2.0) -> Optional[str]:
    """None if nothing listens; otherwise the HTTP `Server` header ('Azurite-Blob/3.37.0' for Azurite)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", f"/{ACCOUNT_NAME}?comp=list")
        return (connection.getresponse().getheader("Server") or "").strip() or "unknown"
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return "not an HTTP server"
    finally:
        connection.close()


def is_azurite(server: Optional[str]) -> bool:
    return bool(server) and server.startswith("Azurite-Blob")


def executable() -> str:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
    found = str(local) if local.exists() else shutil.which("azurite-blob")
    if not found:
        raise AzuriteError("Azurite is not installed: run `npm ci` in the project folder (or `make system-deps`)")
    return found


def start(azurite: Azurite, timeout: float = 30.0) -> int:
    """Start Azurite in its own session (it outlives the caller) and wait until it answers. Returns its pid."""
    azurite.location.mkdir(parents=True, exist_ok=True)
    command = [executable(), "--blobHost", azurite.host, "--blobPort", str(azurite.port),
               "--location", str(azurite.location), "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    with azurite.log_file.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    saved = SavedProcess.of(process.pid)
    azurite.pid_file.write_text(f"{saved.pid} {azurite.port} {saved.create_time}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_azurite(probe(azurite.host, azurite.port, timeout=0.5)):
            return process.pid
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    azurite.pid_file.unlink(missing_ok=True)
    raise AzuriteError(f"Azurite did not start on {azurite.host}:{azurite.port}; see {azurite.log_file}")


def running_pid(azurite: Azurite) -> Optional[int]:
    """The pid saved in the data folder, if that process is still the Azurite that was started."""
    process, _ = _saved(azurite)
    return process.pid if process else None


def _saved(azurite: Azurite) -> Tuple[Optional[psutil.Process], Optional[int]]:
    """(process, port) from the data folder's pid file, or (None, None) when that Azurite is gone."""
    try:
        pid, port, created = azurite.pid_file.read_text().split()
        saved = SavedProcess(pid=int(pid), create_time=float(created))
    except (FileNotFoundError, ValueError):
        return None, None
    process = saved.find(program="azurite-blob")
    return (process, int(port)) if process else (None, None)


def stop(azurite: Azurite, timeout: float = 15.0) -> Optional[int]:
    """Stop the Azurite whose pid is in the data folder's pid file. Returns that pid, or None if none ran."""
    process, _ = _saved(azurite)
    if process is None:
        azurite.pid_file.unlink(missing_ok=True)
        return None
    stop_process(process, timeout)  # Azurite saves its metadata on SIGTERM
    azurite.pid_file.unlink(missing_ok=True)
    return process.pid


def ensure_running(azurite: Azurite) -> str:
    """Use the Azurite listening on the configured port, or start one. Returns a line saying which."""
    server = probe(azurite.host, azurite.port)
    if is_azurite(server):
        where = f"data in {azurite.location}" if running_pid(azurite) else "started outside run.py"
        return f"Azurite is running at {azurite.blob_endpoint} ({where})"
    if server is not None:
        raise AzuriteError(
            f"{azurite.host}:{azurite.port} is in use by another program ({server}), not Azurite: "
            "stop it or set AZURITE_BLOB_PORT to a free port")
    process, port = _saved(azurite)
    if process is not None:  # two Azurites must never share a data folder
        raise AzuriteError(
            f"the Azurite using {azurite.location} (pid {process.pid}) listens on port {port}, not {azurite.port}: "
            "set AZURITE_BLOB_PORT to that port, or stop it with `python run.py azurite stop`")
    pid = start(azurite)
    return (f"Azurite was not running: started it (pid {pid}) at {azurite.blob_endpoint}; "
            f"its data lives in {azurite.location} (log: {azurite.log_file}); "
            "stop it with `python run.py azurite stop`")


def ensure_container(connection_string: str, container: str) -> bool:
    """Create the blob container if it is missing (the artifact store needs it). True if it was created."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    try:
        BlobServiceClient.from_connection_string(connection_string).create_container(container)
    except ResourceExistsError:
        return False
    return True
