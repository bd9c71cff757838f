"""The team stack for real, once per session: `python run.py stack up team` on free loopback ports with its data in a
temporary folder (MariaDB, PostgreSQL, Azurite, the ZenML and MLflow servers, the three accounts), stopped with
`python run.py stack down team` at the end. One workspace copy of the project; each account runs run.py with the
settings `stack up` wrote for it and its own ZenML client folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from heartml.platform import team as team_service
from heartml.platform.declarations import TeamServersDecl
from tests.conftest import Workspace, make_workspace
from tests.ports import free_port

FAST_CONFIG = "tests/configs/training-fast.yaml"
TINY_CONFIG = "tests/configs/training-tiny.yaml"  # every step on a tiny budget: where the model is not checked
MODEL = "heart_failure_classifier"
_CLIENT_PREFIXES = ("ZENML_", "MLFLOW_TRACKING", "HEARTML_", "AZURE", "PGPASSWORD")


@dataclass
class TeamStack:
    team: team_service.Team
    workspace: Workspace
    base: Path
    ports_env: Dict[str, str]
    up_output: str
    outputs: Dict[str, str] = field(default_factory=dict)  # every run.py output, for the secrets scan

    def env(self, account: Optional[str] = None, **extra: str) -> Dict[str, str]:
        """The workspace's environment as `account` (its .env file and its own ZenML client folder), or as nobody."""
        env = {k: v for k, v in self.workspace.env.items() if not k.startswith(_CLIENT_PREFIXES)}
        env.update(self.ports_env)
        env["ZENML_CONFIG_PATH"] = str(self.base / f"zenml-client-{account or 'nobody'}")
        if account:
            env.update(team_service.account_env(self.team, account))
        env.update(extra)
        return env

    def run(self, account: Optional[str], *args: str, check: bool = True, timeout: int = 900,
            **extra: str) -> subprocess.CompletedProcess:
        """`python run.py ARGS` in the workspace as `account`."""
        result = subprocess.run([sys.executable, "run.py", *args], cwd=self.workspace.project,
                                env=self.env(account, **extra), capture_output=True, text=True, timeout=timeout)
        self.outputs[f"{account}: run.py {' '.join(args)}"] = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"run.py {' '.join(args)} as {account} exited {result.returncode}\n"
                                 f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}")
        return result

    def start(self, account: str, *args: str, **extra: str) -> subprocess.Popen:
        """`python run.py ARGS` as `account`, in the background (output in a file under the session folder)."""
        # A name of its own: runs started together must never share (and garble) one log file.
        log = tempfile.NamedTemporaryFile(
            "w+", encoding="utf-8", prefix=f"{account}-", suffix=".log", dir=self.base, delete=False)
        process = subprocess.Popen([sys.executable, "run.py", *args], cwd=self.workspace.project,
                                   env=self.env(account, **extra), stdout=log, stderr=subprocess.STDOUT, text=True)
        process.log = log  # type: ignore[attr-defined]
        return process

    def finish(self, process: subprocess.Popen, timeout: int = 900) -> str:
        process.wait(timeout=timeout)
        process.log.seek(0)  # type: ignore[attr-defined]
        output = process.log.read()  # type: ignore[attr-defined]
        self.outputs[f"background {process.args[2:]}"] = output
        return output

    @contextmanager
    def mlflow(self, account: Optional[str]) -> Iterator[object]:
        """An MlflowClient of the team's MLflow server logged in as `account` (None: no login) for the block: MLflow
        reads the login from the environment at each request."""
        from mlflow.tracking import MlflowClient

        names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        previous = {name: os.environ.pop(name, None) for name in names}
        if account:
            values = team_service.account_env(self.team, account)
            os.environ.update({name: values[name] for name in names})
        try:
            yield MlflowClient(tracking_uri=self.team.mlflow_url, registry_uri=self.team.mlflow_url)
        finally:
            for name, value in previous.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory, request) -> TeamStack:
    # PostgreSQL runs as `postgres` when the tests run as root: its folder must be reachable, unlike pytest's 0700
    # temporary folders.
    home_parent = Path(tempfile.mkdtemp(prefix="heartml-team-"))
    home_parent.chmod(0o755)
    ports = {service: free_port() for service in team_service.SERVICES}
    ports_env = {f"HEARTML_TEAM_{service.upper()}_PORT": str(port) for service, port in ports.items()}
    ports_env["HEARTML_TEAM_HOME"] = str(home_parent / "home")
    team = team_service.Team(TeamServersDecl(home=ports_env["HEARTML_TEAM_HOME"],
                                             **{f"{s}_port": p for s, p in ports.items()}))
    base = tmp_path_factory.mktemp("team")
    workspace = make_workspace(base)
    stack = TeamStack(team=team, workspace=workspace, base=base, ports_env=ports_env, up_output="")
    try:
        stack.up_output = stack.run(None, "stack", "up", "team", timeout=600).stdout
        yield stack
    finally:
        down = subprocess.run([sys.executable, "run.py", "stack", "down", "team"], cwd=workspace.project,
                              env=stack.env(None), capture_output=True, text=True, timeout=300)
        times = request.config.pluginmanager.get_plugin("shared-fixture-times")
        times.notes.append("team_stack down: " + "; ".join(down.stdout.split("\n")[:-1]))
        shutil.rmtree(home_parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def every_server_running(team_stack, request):
    """Each test starts with every server of the one shared stack running. A server found stopped (a fault test that
    failed before it restarted it, or a crash) is reported with the end of its log, then started again, so the tests
    after it test what they say rather than fail on a refused connection."""
    stopped = [service for service, pid in team_service.status(team_stack.team).items() if pid is None]
    if stopped:
        times = request.config.pluginmanager.get_plugin("shared-fixture-times")
        for service in stopped:
            log = team_stack.team.log(service)
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else ["(no log)"]
            times.notes.append(f"team stack: {service} was found stopped before {request.node.nodeid}; "
                               f"the end of {log}:\n    " + "\n    ".join(tail))
        team_service.up(team_stack.team, only=stopped)


@pytest.fixture(scope="session")
def trained_on_team(team_stack) -> dict:
    """One `python run.py --stack team` as the trainer: version 1, production."""
    summary = team_stack.base / "trainer-summary.json"
    team_stack.run("trainer", "--stack", "team", "--config", FAST_CONFIG, "--summary-json", str(summary))
    return json.loads(summary.read_text())


def versions_of(client, name: str = MODEL) -> List:
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
