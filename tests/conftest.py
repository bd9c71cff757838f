"""Shared fixtures. Every test that touches ZenML or MLflow does so in a temporary ZENML_CONFIG_PATH, inside a
temporary copy of the project, so the stores and the `.zen` repository of the developer are never changed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "SE_OFFLINE": "true",
}
_COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", ".zen", "node_modules", "__pycache__", ".pytest_cache",
                                      "test-output", "*.pyc")


# Markers by directory, so a new test module is marked by where it lives: `make test-fast` runs `-m unit`.
DIRECTORY_MARKERS = {"unit": ("unit",), "integration": ("integration",), "reliability": ("integration", "reliability"),
                     "azure": ("integration", "azure"), "team": ("integration", "team")}


# pytest-xdist's workers take whole groups of tests (the scheduler below), so a fixture shared by a group is built
# once: whole directories that share session fixtures (the one team stack; the interrupted and concurrent runs; the
# Azurite runs and the azure stack's ZenML server), the modules that inspect the one trained workspace (checked at
# collection: a module that uses it and is not listed is an error), else each module alone.
DIRECTORY_GROUPS = ("team", "reliability", "azure")
TRAINED_WORKSPACE = "trained_run"
TRAINED_WORKSPACE_MODULES = frozenset(f"tests/integration/test_{name}.py" for name in (
    "bad_input", "dashboard", "data_stages", "model_artifacts", "model_card", "model_guards_itself", "monitoring",
    "promotion_and_inference", "serving", "training_pipeline"))
# The longest groups go first, so that none starts near the end while the other worker idles (seconds on 2 cores,
# one process: team 480, trained_run 450, azure 150, bench 110, reliability 75; the rest under 60 each).
LONGEST_FIRST = ("team", TRAINED_WORKSPACE, "azure", "tests/integration/test_bench.py", "reliability")


def worker_group(nodeid: str) -> str:
    """The group of the test `nodeid` (`tests/<directory>/<module>.py::...`): what one worker runs together."""
    module = nodeid.split("::", 1)[0]
    directory = module.split("/")[1]
    if directory in DIRECTORY_GROUPS:
        return directory
    return TRAINED_WORKSPACE if module in TRAINED_WORKSPACE_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """pytest-xdist's module scheduling (a worker takes a whole scope, in collection order) with our groups as
        the scopes."""

        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if TRAINED_WORKSPACE in item.fixturenames and worker_group(module) != TRAINED_WORKSPACE:
            raise pytest.UsageError(f"{module} uses the shared {TRAINED_WORKSPACE}: add it to "
                                    "TRAINED_WORKSPACE_MODULES in tests/conftest.py (one worker builds it once)")
        for marker in DIRECTORY_MARKERS.get(module.split("/")[1], ()):
            item.add_marker(marker)
    rank = {group: index for index, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(LONGEST_FIRST)))


class SharedFixtureTimes:
    """The shared fixtures' own seconds, printed at the end (pytest's --durations charges a session fixture's
    teardown to the last test), so the suite's time budget can be kept. A plugin of its own: a conftest's hooks
    do not see the fixtures of the session node."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self.teardown_started: Dict[str, float] = {}
        self.notes: List[str] = []  # what a shared fixture has to say of its own time, e.g. each server's stop

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        started = time.monotonic()
        yield
        if fixturedef.scope in ("session", "package", "module"):
            self._add(f"setup {fixturedef.argname}", started)
            fixturedef.addfinalizer(lambda: self.teardown_started.__setitem__(fixturedef.argname, time.monotonic()))

    def pytest_fixture_post_finalizer(self, fixturedef, request):
        started = self.teardown_started.pop(fixturedef.argname, None)
        if started is not None:
            self._add(f"teardown {fixturedef.argname}", started)

    def pytest_sessionfinish(self, session):
        workeroutput = getattr(session.config, "workeroutput", None)  # an xdist worker: hand them to the controller
        if workeroutput is not None:
            workeroutput["shared_fixture_times"] = {"seconds": self.seconds, "notes": self.notes}

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):  # xdist's controller: a worker has finished
        handed = getattr(node, "workeroutput", {}).get("shared_fixture_times", {})
        for name, seconds in handed.get("seconds", {}).items():
            self.seconds[f"{name} ({node.gateway.id})"] = seconds
        self.notes.extend(handed.get("notes", []))

    def pytest_terminal_summary(self, terminalreporter):
        slowest = sorted(((s, n) for n, s in self.seconds.items() if s >= 5), reverse=True)[:15]
        if slowest:
            terminalreporter.section("slowest shared fixtures (module and session scope)")
            for seconds, name in slowest:
                terminalreporter.write_line(f"{seconds:8.2f}s {name}")
        for note in self.notes:
            terminalreporter.write_line(note)

    def _add(self, name: str, started: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started


def pytest_configure(config):
    config.pluginmanager.register(SharedFixtureTimes(), "shared-fixture-times")
    # A suite started in the background by a shell without job control (`make test &` in a script) inherits SIGINT
    # ignored, and so would every run.py it starts: the tests that press Ctrl-C would see it ignored (runs that
    # complete, a guard that never wakes). Children inherit only an ignored signal, so un-ignoring it here suffices.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Workspace:
    """A throw-away copy of the project with its own ZenML store."""

    project: Path
    zenml_config: Path

    @property
    def env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_TRACKING"))}
        env.update(OFFLINE_ENV)
        env["ZENML_CONFIG_PATH"] = str(self.zenml_config)
        return env

    def run(self, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
        """`python run.py ARGS` in the workspace, as a user would type it."""
        result = subprocess.run([sys.executable, "run.py", *args], cwd=self.project, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"run.py {' '.join(args)} exited {result.returncode}\n"
                                 f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}")
        return result


def make_workspace(base: Path) -> Workspace:
    project = base / "project"
    shutil.copytree(ROOT, project, ignore=_COPY_IGNORE)
    node_modules = ROOT / "node_modules"
    if node_modules.is_dir():
        (project / "node_modules").symlink_to(node_modules)
    return Workspace(project=project, zenml_config=base / "zenml-config")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="session")
def zenml_client(workspace):
    """A ZenML client in this test process bound to the workspace's store and repository; the environment is
    restored at the end of the session."""
    settings = {**OFFLINE_ENV, "ZENML_CONFIG_PATH": str(workspace.zenml_config),
                "ZENML_REPOSITORY_PATH": str(workspace.project)}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    from zenml.client import Client

    yield Client()
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def tracking(uri: str) -> Iterator[object]:
    """The test process pointed at a workspace's MLflow store (for `models:/` URIs too), then restored."""
    import mlflow
    from mlflow.tracking import MlflowClient

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield MlflowClient(tracking_uri=uri)
    finally:
        mlflow.set_tracking_uri(previous)


def config_with_model_name(workspace: Workspace, name: str, base: str = "tests/configs/training-fast.yaml",
                           quality_gate: bool = True, **parameters) -> str:
    """A test config registering under its own model name, so a module's extra runs (and its promotions) leave the
    shared heart_failure_classifier versions and aliases alone: no module depends on another having run."""
    config = yaml.safe_load((workspace.project / base).read_text())
    config["model"]["name"] = name
    config.setdefault("steps", {})["quality_gate"] = {"parameters": {"enabled": quality_gate}}
    config.setdefault("parameters", {}).update(parameters)
    path = workspace.project / "out" / f"{name}-{Path(base).stem}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@dataclass
class TrainedRun:
    summary: dict
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def trained_run(workspace) -> TrainedRun:
    """One real `python run.py --stack local` shared by the tests that inspect its results."""
    summary_path = workspace.project / "out" / "summary.json"
    result = workspace.run("--stack", "local", "--config", "tests/configs/training-fast.yaml",
                           "--summary-json", str(summary_path))
    return TrainedRun(summary=json.loads(summary_path.read_text()), stdout=result.stdout, stderr=result.stderr)
