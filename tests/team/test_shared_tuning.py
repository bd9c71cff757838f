"""Tuning that scales out, for real: a training run on the team stack tunes on Optuna studies in the team's
PostgreSQL (tuning.storage) while two `python run.py tune-worker` processes pull trials from the same studies.
Every trial runs exactly once, in one of the three processes; the run selects the best trial; and one process
trying the same trials on its own selects the same model (tests/team/replay_tuning.py). Pruning is off here so
that the same trials give the same scores in any order (the pruner's decisions depend on the order trials end)."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
import yaml

from heartml.core.tuning import ran_trials, rdb_storage
from heartml.platform import team as team_service
from heartml.platform.tuning_workers import STUDY_PREFIX
from tests.team.conftest import FAST_CONFIG

pytestmark = pytest.mark.slow
MODEL = "heart_failure_tuned"
FAMILIES = ["logistic_regression", "xgboost"]
N_TRIALS = 8


@pytest.fixture(scope="module")
def shared_tuning(team_stack):
    config = yaml.safe_load((team_stack.workspace.project / FAST_CONFIG).read_text())
    config["model"]["name"] = MODEL
    config["steps"]["model_building"]["parameters"]["modeling"] = {
        "families": FAMILIES, "cv_folds": 3, "n_jobs": 1, "soft_voting": True,
        # XGBoost trials of about a second (1000+ trees): a worker looks for open studies every second, and with
        # 20-120 trees a study's 8 trials were over in 0.8 s, before the second worker looked (CI, 2026-12-05).
        "tuning": {"n_trials": N_TRIALS, "pruning": None, "timeout_seconds": 600,
                   "storage": "$HEARTML_TUNING_STORAGE",
                   "search_spaces": {"xgboost": {"n_estimators": {"type": "int", "low": 1000, "high": 2500},
                                                 "max_depth": {"type": "int", "low": 3, "high": 6},
                                                 "learning_rate": {"type": "float", "low": 0.005, "high": 0.05}}}},
    }
    path = team_stack.base / "shared-tuning.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    reports = [team_stack.base / f"worker-{i}.json" for i in range(2)]
    workers = [team_stack.start("trainer", "tune-worker", "--stack", "team", "--config", str(path), "--max-runs", "1",
                                "--idle-seconds", "300", "--summary-json", str(report)) for report in reports]
    summary = team_stack.base / "shared-tuning-summary.json"
    team_stack.run("trainer", "--stack", "team", "--config", str(path), "--summary-json", str(summary))
    outputs = [team_stack.finish(worker, timeout=600) for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    run = json.loads(summary.read_text())
    storage = rdb_storage(team_service.account_env(team_stack.team, "trainer")["HEARTML_TUNING_STORAGE"])
    studies = {family: optuna.load_study(study_name=f"{STUDY_PREFIX}{run['run_id']}-{family}", storage=storage)
               for family in FAMILIES}
    return {"run": run, "studies": studies, "workers": [json.loads(r.read_text()) for r in reports],
            "outputs": outputs}


def test_every_trial_runs_exactly_once_across_the_run_and_two_workers(shared_tuning):
    workers = shared_tuning["workers"]
    assert all(worker["runs"] == [shared_tuning["run"]["run_id"]] for worker in workers)
    for family, study in shared_tuning["studies"].items():
        ran = ran_trials(study)
        assert [t.number for t in ran] == list(range(N_TRIALS)), family
        assert {t.state for t in ran} == {optuna.trial.TrialState.COMPLETE}, family
        assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL))
        by_worker = {}
        for trial in ran:
            by_worker.setdefault(trial.user_attrs["worker"], []).append(trial.number)
        for worker in workers:  # what each worker says it ran is what the study recorded for it
            assert by_worker.pop(worker["worker"], []) == worker["trials"].get(study.study_name, []), family
        assert len(by_worker) <= 1, by_worker  # the rest: the run's own model_building step
    # Both workers took part (the step alone could have run everything).
    assert all(sum(len(numbers) for numbers in worker["trials"].values()) >= 1 for worker in workers), workers


def test_the_run_selects_the_best_trial_and_one_worker_on_the_same_trials_selects_the_same_model(team_stack,
                                                                                                 shared_tuning):
    result = subprocess.run([sys.executable, "-m", "tests.team.replay_tuning", shared_tuning["run"]["run_id"]],
                            cwd=team_stack.workspace.project, env=team_stack.env("trainer"), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    replay = json.loads(result.stdout.strip().splitlines()[-1])
    for family, study in shared_tuning["studies"].items():
        assert replay["run_cv_mean"][family] == pytest.approx(study.best_value, abs=1e-12), family
        assert replay["trials"][family] == N_TRIALS
    assert replay["cv_mean"] == pytest.approx(replay["run_cv_mean"], abs=1e-12)
    assert replay["selected"] == replay["run_selected"]
    assert replay["params"] == replay["run_params"]
    assert replay["max_probability_difference"] < 1e-9


def test_a_worker_closes_the_open_study_of_a_run_that_has_ended_and_takes_no_trial(team_stack, shared_tuning):
    """A run killed inside model_building leaves its studies open; once ZenML has the run as ended, a worker closes
    such a study instead of tuning for nobody."""
    run_id = shared_tuning["run"]["run_id"]
    storage = rdb_storage(team_service.account_env(team_stack.team, "trainer")["HEARTML_TUNING_STORAGE"])
    name = f"{STUDY_PREFIX}{run_id}-left-open"
    left_open = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for key, value in {**shared_tuning["studies"]["xgboost"].user_attrs, "closed": False}.items():
        left_open.set_user_attr(key, value)
    report = team_stack.base / "worker-left-open.json"
    team_stack.run("trainer", "tune-worker", "--stack", "team", "--config", str(team_stack.base / "shared-tuning.yaml"),
                   "--idle-seconds", "2", "--summary-json", str(report))
    assert json.loads(report.read_text())["trials"] == {}
    reloaded = optuna.load_study(study_name=name, storage=storage)
    assert reloaded.user_attrs["closed"] is True and reloaded.trials == []
