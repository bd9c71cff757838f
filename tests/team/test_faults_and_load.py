"""The team stack under load and faults, for real. A watcher (the reader, over MLflow's REST API, twice a second)
checks throughout that `production` always names a complete version. Faults: the MLflow server killed during
registration; the ZenML server (between two steps), Azurite and PostgreSQL restarted during one run. Each
ends in a completed run or in one clear error line; nothing half-registered is ever served; the next run succeeds.
Load: four training runs at once from two accounts while the reader scores batches."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

import psutil
import pytest
import requests

from heartml.platform import team as team_service
from heartml.registry.model_versions import ABANDONED, COMPLETE, STATUS_TAG
from tests.team.conftest import FAST_CONFIG, MODEL, TINY_CONFIG, TeamStack

pytestmark = pytest.mark.slow
# Every step runs (--no-cache). The load runs take the tiny budget; the restarts keep the fast config, whose steps
# last long enough for each restart to land inside the step it is aimed at.
TRAIN = ("--stack", "team", "--config", TINY_CONFIG, "--no-cache")
RESTART_TRAIN = ("--stack", "team", "--config", FAST_CONFIG, "--no-cache")


class ProductionWatcher(threading.Thread):
    """What `production` names, twice a second, as the reader sees it: (time, version, registration status)."""

    def __init__(self, stack: TeamStack):
        super().__init__(daemon=True)
        self.url = f"{stack.team.mlflow_url}/api/2.0/mlflow/registered-models/alias"
        self.auth = ("reader", team_service.account_env(stack.team, "reader")["MLFLOW_TRACKING_PASSWORD"])
        self.samples: List[Tuple[float, str, Optional[str]]] = []
        self.unanswered = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                response = requests.get(self.url, params={"name": MODEL, "alias": "production"}, auth=self.auth,
                                        timeout=5)
            except requests.RequestException:
                self.unanswered += 1  # the MLflow server is down in a fault test
                continue
            if response.status_code != 200:
                self.unanswered += 1
                continue
            version = response.json()["model_version"]
            tags = {t["key"]: t["value"] for t in version.get("tags", [])}
            self.samples.append((time.monotonic(), version["version"], tags.get(STATUS_TAG)))

    def served_incomplete(self) -> List[Tuple[float, str, Optional[str]]]:
        return [sample for sample in self.samples if sample[2] != COMPLETE]


@pytest.fixture(scope="module")
def watcher(team_stack, trained_on_team):
    watching = ProductionWatcher(team_stack)
    watching.start()
    yield watching
    watching.done.set()
    watching.join(timeout=10)


def _wait_for_line(process: subprocess.Popen, pattern: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.log.seek(0)
        if re.search(pattern, process.log.read()):
            return
        if process.poll() is not None:
            process.log.seek(0)
            raise AssertionError(f"run.py ended before {pattern!r}:\n{process.log.read()[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout} s")


def _error_lines(output: str) -> List[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _ended_cleanly(output: str, returncode: int) -> Optional[str]:
    """None for a completed run; the one error line of a failed one (asserting there is exactly one)."""
    if returncode == 0:
        assert "completed" in output, output[-3000:]
        return None
    errors = _error_lines(output)
    assert len(errors) == 1 and "Traceback" not in output, output[-6000:]
    return errors[0]


def _versions(stack: TeamStack):
    with stack.mlflow("reader") as client:
        return {v.version: v.tags.get(STATUS_TAG) for v in client.search_model_versions(f"name = '{MODEL}'")}


def _train_and_expect_success(stack: TeamStack) -> dict:
    """The next run, as a user would type it after a failure: the steps that finished are cached, registration and
    promotion (never cached) run again."""
    summary = stack.base / f"summary-{time.monotonic_ns()}.json"
    stack.run("trainer", "--stack", "team", "--config", FAST_CONFIG, "--summary-json", str(summary))
    return json.loads(summary.read_text())


def test_mlflow_server_killed_during_registration(team_stack, watcher):
    before = _versions(team_stack)
    # MLflow's client retries a silent server for about two minutes (7 retries, backoff 2); fewer here, so the
    # run gives up within seconds while the server stays down. The steps before registration come from the cache
    # (registration itself never does).
    run = team_stack.start("trainer", "--stack", "team", "--config", FAST_CONFIG,
                           MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    _wait_for_line(run, r"(Step|cached version of step) `quality_gate`")  # register_model runs next
    time.sleep(1.0)
    server = team_service.running(team_stack.team, "mlflow")
    for process in [*server.children(recursive=True), server]:
        process.kill()
    psutil.wait_procs([server], timeout=10)
    output = team_stack.finish(run)
    line = _ended_cleanly(output, run.returncode)
    assert line is not None and "MLflow server" in line and "did not answer" in line, output[-3000:]

    team_stack.run(None, "stack", "up", "team")  # starts the MLflow server again, the rest is running
    after = _versions(team_stack)
    new = {v: status for v, status in after.items() if v not in before}
    assert all(status != COMPLETE for status in new.values()), new  # half-registered at most, never complete

    summary = _train_and_expect_success(team_stack)
    statuses = _versions(team_stack)
    assert statuses[summary["registered_model"]["version"]] == COMPLETE
    assert all(statuses[v] == ABANDONED for v in new), statuses  # the next run closed what the killed one left
    assert watcher.served_incomplete() == []


# Where in the run each server goes down and comes back (one run, in this order, to keep the suite short).
RESTARTS = [
    ("zenml", r"Step `data_ingestion` has finished"),  # between two steps
    ("azurite", r"Step `data_preprocessing` has finished"),  # while features are built and stored
    ("postgresql", r"Step `feature_engineering` has finished"),  # while the models are tuned and logged
]


def test_servers_restarted_during_a_run(team_stack, watcher):
    summary = team_stack.base / "summary-restarts.json"
    run = team_stack.start("trainer", *RESTART_TRAIN, "--summary-json", str(summary))
    for service, restart_after in RESTARTS:
        _wait_for_line(run, restart_after)
        pid_before = team_service.status(team_stack.team)[service]
        team_service.down(team_stack.team, only=[service])
        team_service.up(team_stack.team, only=[service])
        assert team_service.status(team_stack.team)[service] not in (None, pid_before), service
    output = team_stack.finish(run)
    line = _ended_cleanly(output, run.returncode)
    if line is not None:  # stopped in one line; the next run succeeds
        completed = _train_and_expect_success(team_stack)
    else:
        completed = json.loads(summary.read_text())
    assert completed["status"] == "completed"
    assert _versions(team_stack)[completed["registered_model"]["version"]] == COMPLETE
    assert watcher.served_incomplete() == []


def test_four_training_runs_from_two_accounts_while_the_reader_scores(team_stack, watcher):
    from heartml.core.sources import read_source

    patients = team_stack.base / "patients.csv"  # 100 patients of the bundled data, without the outcome
    read_source("bundled://heart").drop(columns="HeartDisease").head(100).to_csv(patients, index=False)
    before = set(_versions(team_stack))
    started = time.monotonic()
    summaries = [team_stack.base / f"load-{i}.json" for i in range(4)]
    accounts = ["trainer", "admin", "trainer", "admin"]
    runs = [team_stack.start(account, *TRAIN, "--summary-json", str(path))
            for account, path in zip(accounts, summaries)]
    scored = []
    while any(run.poll() is None for run in runs):  # the reader scores batches with production meanwhile
        output_file = team_stack.base / f"scored-{len(scored)}.csv"
        result = team_stack.run("reader", "predict", "--stack", "team", "--input", str(patients),
                                "--output", str(output_file), check=False)
        scored.append((result.returncode, output_file.exists(), _error_lines(result.stderr)))
    outputs = [team_stack.finish(run) for run in runs]
    wall = time.monotonic() - started
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [o[-3000:] for o in outputs]

    versions = [json.loads(path.read_text())["registered_model"]["version"] for path in summaries]
    assert len(set(versions)) == 4  # unique
    statuses = _versions(team_stack)
    assert set(statuses) - before == set(versions)
    assert all(statuses[v] == COMPLETE for v in versions)
    assert scored and all(code == 0 and written for code, written, _ in scored), scored
    assert watcher.served_incomplete() == []
    figures = {"wall_seconds": round(wall, 1), "versions": sorted(versions, key=int), "failed_runs": 0,
               "batch_scorings": len(scored), "production_samples": len(watcher.samples),
               "production_incomplete": 0, "watcher_unanswered": watcher.unanswered}
    Path("test-output").mkdir(exist_ok=True)
    Path("test-output/team-load.json").write_text(json.dumps(figures, indent=2))
    print(f"team load: {figures}")
