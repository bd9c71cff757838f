"""Real faults on the real local stack, shared by the reliability tests (session-wide, each scenario runs once).

- `user_stores`: what the developer's own ZenML and MLflow stores look like before any of these runs.
- `interrupted_runs`: one fresh workspace; `python run.py --stack local` interrupted with SIGINT and killed with
  SIGKILL while model_building runs and again right after register_model created its MLflow version, then one
  ordinary run. The registry is read right after each fault, before the next run.py can touch it.
- `concurrent_runs`: another fresh workspace; two `python run.py --stack local --no-cache` started together.

Signals go to the process group, as Ctrl-C in a terminal does (joblib/loky workers included). The SIGINT at
tuning reaches a run.py started as from a terminal; the one at registration a run.py started with SIGINT ignored, as
a shell script's background job is, whatever the test process itself inherited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests.conftest import Workspace, make_workspace

# --verbose: the faults are timed on ZenML's "has started" and MLflow's "Created version" lines, which the quiet
# default console leaves out. The tiny config: every step, and the model is not what these tests check.
FAST = ("--stack", "local", "--config", "tests/configs/training-tiny.yaml", "--verbose")
MODEL = "heart_failure_classifier"
# The developer's environment as pytest found it, before any fixture points ZENML_CONFIG_PATH elsewhere.
USER_ENV = dict(os.environ)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Launched:
    """`python run.py ARGS` in `workspace`, in a process group of its own, its output read line by line."""

    def __init__(self, workspace: Workspace, *args: str, sigint_ignored: bool = False):
        # PYTHONFAULTHANDLER: a run.py that hangs is sent SIGABRT before it is killed, and prints every thread's stack.
        env = dict(workspace.env, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        # The SIGINT disposition is set by a Python that execs run.py (ignored survives exec): preexec_fn is not
        # safe with this process's reader threads.
        sigint = "SIG_IGN" if sigint_ignored else "SIG_DFL"
        launcher = (f"import os, signal, sys; signal.signal(signal.SIGINT, signal.{sigint}); "
                    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
        self.process = subprocess.Popen([sys.executable, "-c", launcher, "run.py", *args], cwd=workspace.project,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: List[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(_ANSI.sub("", line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 300) -> re.Match:
        """The first output line matching `pattern`, as soon as run.py prints it."""
        compiled, deadline, seen = re.compile(pattern), time.monotonic() + timeout, 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := compiled.search(line):
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    raise AssertionError(f"run.py {'ended' if self._ended else 'timed out'} before printing "
                                         f"{pattern!r}; its output ends with:\n" + "\n".join(self.lines[-40:]))
                self._changed.wait(remaining)

    def send(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def finish(self, timeout: float = 600) -> int:
        """run.py's exit code (negative: the signal that killed it)."""
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # the faulthandler's dump of where it hangs
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            self._reader.join(timeout=30)
            raise AssertionError(f"run.py did not end within {timeout} s; its output and stacks end with:\n"
                                 + "\n".join(self.lines[-150:])) from None
        self._reader.join(timeout=30)
        return returncode

    def kill(self) -> None:
        """SIGKILL to its process group (only ever this test's own), also when run.py itself has already ended and
        left workers behind."""
        try:
            self.send(signal.SIGKILL)
        except ProcessLookupError:  # nothing of the group is left
            pass
        self.process.wait()


def mlflow_db(workspace: Workspace) -> Path:
    return workspace.zenml_config / "local_stores" / "mlflow" / "mlflow.db"


def mlflow_client(workspace: Workspace):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{mlflow_db(workspace)}")


@dataclass
class RegistryState:
    """The MLflow registry as read from its SQLite file: every version's registration status, and the aliases."""

    statuses: Dict[str, str]
    aliases: Dict[str, str]

    @classmethod
    def read(cls, workspace: Workspace) -> "RegistryState":
        if not mlflow_db(workspace).is_file():
            return cls({}, {})
        client = mlflow_client(workspace)
        versions = client.search_model_versions(f"name = '{MODEL}'")
        if not versions:
            return cls({}, {})
        statuses = {str(v.version): v.tags.get("registration_status", "missing") for v in versions}
        aliases = {alias: str(version) for alias, version in client.get_registered_model(MODEL).aliases.items()}
        return cls(statuses, aliases)


def inspect_runs(workspace: Workspace) -> dict:
    """tests/reliability/inspect_runs.py's JSON: the workspace's ZenML store, read in a process of its own."""
    result = subprocess.run([sys.executable, "-m", "tests.reliability.inspect_runs"], cwd=workspace.project,
                            env=workspace.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Fault:
    """One run.py that got `signal_name` during `phase`."""

    signal_name: str
    phase: str
    returncode: int
    output: str
    registered_version: Optional[str]  # the version register_model had created when the signal came, if any
    registry_after: RegistryState  # read right after the process ended, before any other run.py


@dataclass
class InterruptedRuns:
    workspace: Workspace
    faults: Dict[str, Fault] = field(default_factory=dict)
    final_output: str = ""
    final_returncode: int = -1
    final_summary: dict = field(default_factory=dict)
    registry_before_final: Optional[RegistryState] = None
    registry_after_final: Optional[RegistryState] = None
    store: dict = field(default_factory=dict)  # the ZenML store after everything


# Phases: while model_building runs (tuning), and right after MLflow created the pending version.
TUNING = r"Step `model_building` has started"
REGISTERED = r"Created version '(\d+)' of model"


def _fault(workspace: Workspace, signum: int, phase: str) -> Fault:
    launched = Launched(workspace, *FAST, sigint_ignored=phase == REGISTERED)
    try:
        match = launched.wait_for(phase)
        if phase == TUNING:
            # The step's own code (cross-validation and the search), not ZenML's step set-up, is what should get
            # the signal; the tests check afterwards that the step had not finished.
            time.sleep(0.5)
        launched.send(signum)
    except BaseException:
        launched.kill()
        raise
    returncode = launched.finish(timeout=300)
    return Fault(signal_name=signal.Signals(signum).name, phase="tuning" if phase == TUNING else "registration",
                 returncode=returncode, output=launched.output,
                 registered_version=match.group(1) if phase == REGISTERED else None,
                 registry_after=RegistryState.read(workspace))


@pytest.fixture(scope="session")
def user_stores():
    """The developer's stores before this session's runs (see test_user_stores.py)."""
    from tests.reliability.user_stores import snapshot

    return snapshot(USER_ENV)


@pytest.fixture(scope="session")
def interrupted_runs(tmp_path_factory, user_stores) -> InterruptedRuns:
    workspace = make_workspace(tmp_path_factory.mktemp("interrupted"))
    runs = InterruptedRuns(workspace=workspace)
    for name, signum, phase in (("sigint_tuning", signal.SIGINT, TUNING),
                                ("sigkill_tuning", signal.SIGKILL, TUNING),
                                ("sigint_registration", signal.SIGINT, REGISTERED),
                                ("sigkill_registration", signal.SIGKILL, REGISTERED)):
        runs.faults[name] = _fault(workspace, signum, phase)
    runs.registry_before_final = RegistryState.read(workspace)
    result = workspace.run(*FAST, "--summary-json", "out/final.json", check=False)
    runs.final_returncode, runs.final_output = result.returncode, _ANSI.sub("", result.stdout + result.stderr)
    if result.returncode == 0:
        runs.final_summary = json.loads((workspace.project / "out" / "final.json").read_text())
    runs.registry_after_final = RegistryState.read(workspace)
    runs.store = inspect_runs(workspace)
    return runs


@dataclass
class ConcurrentRuns:
    workspace: Workspace
    returncodes: List[int]
    outputs: List[str]
    summaries: List[Optional[dict]]
    store: dict


@pytest.fixture(scope="session")
def concurrent_runs(tmp_path_factory, user_stores) -> ConcurrentRuns:
    """Two `python run.py --stack local --no-cache` started together on a fresh workspace: both create the ZenML
    store, the stack, the MLflow database, the registered model and the ZenML model at the same time."""
    workspace = make_workspace(tmp_path_factory.mktemp("concurrent"))
    launched = [Launched(workspace, *FAST, "--no-cache", "--summary-json", f"out/concurrent-{i}.json")
                for i in (1, 2)]
    returncodes = [run.finish(timeout=600) for run in launched]
    summaries = []
    for i in (1, 2):
        path = workspace.project / "out" / f"concurrent-{i}.json"
        summaries.append(json.loads(path.read_text()) if path.is_file() else None)
    return ConcurrentRuns(workspace=workspace, returncodes=returncodes, outputs=[run.output for run in launched],
                          summaries=summaries, store=inspect_runs(workspace))


def assert_registry_consistent(state: RegistryState) -> None:
    """No alias on a missing or incomplete version."""
    for alias, version in state.aliases.items():
        assert version in state.statuses, f"alias {alias} -> version {version}, which does not exist"
        assert state.statuses[version] == "complete", \
            f"alias {alias} -> version {version}, whose registration is {state.statuses[version]}"

