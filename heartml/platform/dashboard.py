"""Start and stop the two UIs people browse: the local ZenML dashboard and the MLflow UI, on loopback.

ZenML's own daemon is managed with `zenml login --local` / `zenml logout --local` (killing it by PID would leave
the client pointed at a dead server). The MLflow UI is our child: its id and start time are kept in a state file,
and it is stopped (with its workers) only while that id still names that same MLflow process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import psutil

from heartml.platform.processes import SavedProcess, stop_process

ZENML_PORT = 8237
MLFLOW_PORT = 5000
LOOPBACK = "127.0.0.1"


@dataclass
class DashboardState:
    zenml_url: str
    mlflow_url: str
    mlflow_pid: int
    mlflow_log: str
    tracking_uri: str
    mlflow_started: float  # the process's start time: with the pid, what identifies it

    def mlflow_process(self) -> Optional[psutil.Process]:
        """The MLflow UI started for this state, if that process is still running."""
        return SavedProcess(self.mlflow_pid, self.mlflow_started).find(program="mlflow")


def _cli(name: str) -> str:
    """The console script installed beside this interpreter (the project's venv), else PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _config_dir() -> Path:
    from zenml.config.global_config import GlobalConfiguration

    return Path(GlobalConfiguration().config_directory)


def state_file() -> Path:
    return _config_dir() / "heartml-dashboard.json"


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def skip_onboarding(zenml_url: str) -> None:
    """Mark the onboarding survey as done, so a first visit lands on the dashboard and not on a form."""
    body = json.dumps({"email_opted_in": False, "user_metadata": {"finished_onboarding_survey": True}}).encode()
    request = urllib.request.Request(f"{zenml_url}/api/v1/current-user", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"could not skip the ZenML onboarding survey: HTTP {response.status}")


def start_zenml(zenml_port: int = ZENML_PORT) -> str:
    """Start (or reuse) the local ZenML server with onboarding skipped; returns its URL."""
    zenml_url = f"http://{LOOPBACK}:{zenml_port}"
    if not http_ok(f"{zenml_url}/health"):
        # Its progress lines say what the URL printed by the caller says; they are shown only if it fails.
        login = subprocess.run([_cli("zenml"), "login", "--local", "--port", str(zenml_port)],
                               capture_output=True, text=True)
        if login.returncode != 0:
            raise RuntimeError(f"`zenml login --local` failed ({login.returncode}):\n"
                               f"{(login.stdout + login.stderr)[-3000:]}")
        wait_until_healthy(f"{zenml_url}/health", 120, "the ZenML server")
    skip_onboarding(zenml_url)
    return zenml_url


def start(tracking_uri: str, zenml_port: int = ZENML_PORT, mlflow_port: int = MLFLOW_PORT) -> DashboardState:
    """Start (or reuse) the local ZenML server and an MLflow UI over the stack's tracking store."""
    zenml_url = start_zenml(zenml_port)
    mlflow_url = f"http://{LOOPBACK}:{mlflow_port}"

    previous = read_state()
    if previous and previous.mlflow_process() and http_ok(f"{previous.mlflow_url}/health"):
        state = DashboardState(zenml_url, previous.mlflow_url, previous.mlflow_pid, previous.mlflow_log, tracking_uri,
                               previous.mlflow_started)
    else:
        if http_ok(f"{mlflow_url}/health"):
            raise RuntimeError(f"port {mlflow_port} already serves something else; free it or pass another port")
        log_path = _config_dir() / "heartml-mlflow-ui.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [_cli("mlflow"), "ui", "--backend-store-uri", tracking_uri, "--host", LOOPBACK,
                 "--port", str(mlflow_port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        state = DashboardState(zenml_url, mlflow_url, process.pid, str(log_path), tracking_uri,
                               SavedProcess.of(process.pid).create_time)
        state_file().write_text(json.dumps(asdict(state)))
        wait_until_healthy(f"{mlflow_url}/health", 120, "the MLflow UI")
    state_file().write_text(json.dumps(asdict(state)))
    return state


def read_state() -> Optional[DashboardState]:
    path = state_file()
    if not path.is_file():
        return None
    try:
        return DashboardState(**json.loads(path.read_text()))
    except (TypeError, ValueError):  # written by an older version, or damaged: nothing it names is ours to stop
        return None


def stop() -> list[str]:
    """Stop both UIs and leave the CLI on the local store. Returns what was stopped."""
    stopped = []
    # `logout --local` disconnects the client first, then stops the daemon: no calls to a dead server afterwards.
    result = subprocess.run([_cli("zenml"), "logout", "--local"], capture_output=True, text=True)
    if result.returncode == 0:
        stopped.append("ZenML server")
    from zenml.config.global_config import GlobalConfiguration

    store = GlobalConfiguration().store_configuration
    if store is not None and str(store.url).startswith(f"http://{LOOPBACK}:"):
        # The daemon died on its own: plain `logout` resets the client to the local SQLite store.
        subprocess.run([_cli("zenml"), "logout"], capture_output=True, text=True)
    state = read_state()
    process = state.mlflow_process() if state else None
    if process is not None:
        stop_process(process, timeout=15, with_children=True)
        stopped.append(f"MLflow UI (pid {state.mlflow_pid})")
    state_file().unlink(missing_ok=True)
    return stopped
