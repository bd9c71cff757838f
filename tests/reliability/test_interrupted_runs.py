"""`python run.py --stack local` interrupted with Ctrl-C (SIGINT) and killed (SIGKILL) while model_building tunes
and right after register_model created its MLflow version; then the same command once more.

After each fault: the ZenML store (no run or step left `running`), the MLflow tracking store (no run left RUNNING)
and the registry (no half-registered version counted as complete, no alias on a missing or incomplete version) are
consistent, and the next run succeeds with the cached steps.
"""

from __future__ import annotations

import pytest

from heartml.platform.reliability import KILLED_REASON
from tests.reliability.conftest import MODEL, assert_registry_consistent, mlflow_client

pytestmark = pytest.mark.slow

ORDER = ("sigint_tuning", "sigkill_tuning", "sigint_registration", "sigkill_registration", "final")
DATA_STEPS = ("data_ingestion", "data_preprocessing", "feature_engineering")


def store_runs(runs) -> dict:
    """The workspace's ZenML runs by scenario (they ran one after the other)."""
    found = runs.store["runs"]
    assert len(found) == len(ORDER), [(r["name"], r["status"]) for r in found]
    return dict(zip(ORDER, found))


def test_ctrl_c_prints_one_line_and_exits_130(interrupted_runs):
    by_scenario = store_runs(interrupted_runs)
    for scenario in ("sigint_tuning", "sigint_registration"):
        fault = interrupted_runs.faults[scenario]
        # 130 and our line last: run.py itself ended on no uncaught exception. (Libraries may still log what they
        # were doing when the signal came, e.g. the Optuna trial it cut short, or a joblib worker that was starting.)
        assert fault.returncode == 130, fault.output[-3000:]
        lines = [line for line in fault.output.splitlines() if line.strip()]
        ours = [line for line in lines if line.startswith("interrupted")]
        assert ours == [f"interrupted (SIGINT): run {by_scenario[scenario]['name']} is marked failed in ZenML; "
                        "finished steps are cached, so the same command resumes after them"]
        assert lines[-1] == ours[0]


def test_sigint_marks_the_step_and_the_run_failed_at_once(interrupted_runs):
    by_scenario = store_runs(interrupted_runs)
    for scenario, interrupted_step, finished_steps in (
            ("sigint_tuning", "model_building", DATA_STEPS),
            ("sigint_registration", "register_model", DATA_STEPS + ("model_building", "model_evaluation"))):
        run = by_scenario[scenario]
        # Marked by ZenML when the signal came, not later by the next run.py's clean-up of killed runs.
        assert (run["status"], run["status_reason"]) != ("failed", KILLED_REASON), run
        assert run["status"] == "failed", run
        assert run["steps"][interrupted_step] == "failed", run["steps"]
        for step in finished_steps:
            assert run["steps"][step] in ("completed", "cached"), (step, run["steps"])
        assert "promote_model" not in run["steps"], run["steps"]


def test_a_killed_run_is_marked_failed_by_the_next_run_py(interrupted_runs):
    by_scenario = store_runs(interrupted_runs)
    next_output = {"sigkill_tuning": interrupted_runs.faults["sigint_registration"].output,
                   "sigkill_registration": interrupted_runs.final_output}
    for scenario, killed_step in (("sigkill_tuning", "model_building"), ("sigkill_registration", "register_model")):
        assert interrupted_runs.faults[scenario].returncode == -9
        run = by_scenario[scenario]
        assert (run["status"], run["status_reason"]) == ("failed", KILLED_REASON), run
        assert run["steps"][killed_step] == "failed", run["steps"]
        assert f"run {run['name']} was left 'running' by a run.py that was killed: marked failed" \
            in next_output[scenario]


def test_no_run_or_step_is_left_unfinished(interrupted_runs):
    for run in interrupted_runs.store["runs"]:
        assert run["status"] in ("completed", "failed"), run
        for step, status in run["steps"].items():
            assert status in ("completed", "cached", "failed", "skipped"), (run["name"], step, status)


def test_the_mlflow_tracking_store_has_no_run_left_running(interrupted_runs):
    client = mlflow_client(interrupted_runs.workspace)
    experiments = [e.experiment_id for e in client.search_experiments()]
    status_by_name = {r.info.run_name: r.info.status for r in client.search_runs(experiments, max_results=1000)}
    by_scenario = store_runs(interrupted_runs)
    expected = {"sigint_tuning": "FAILED", "sigkill_tuning": "KILLED", "sigint_registration": "FAILED",
                "sigkill_registration": "KILLED", "final": "FINISHED"}
    assert {scenario: status_by_name.get(run["name"]) for scenario, run in by_scenario.items()} == expected
    assert "RUNNING" not in status_by_name.values()


def test_half_registered_versions_never_count_as_complete(interrupted_runs):
    for scenario in ("sigint_tuning", "sigkill_tuning"):
        assert interrupted_runs.faults[scenario].registry_after.statuses == {}  # nothing registered yet
    half_registered = []
    for scenario in ("sigint_registration", "sigkill_registration"):
        fault = interrupted_runs.faults[scenario]
        version = fault.registered_version
        half_registered.append(version)
        # Read right after the fault, before any other run.py: the version exists, pending, and no alias has it.
        assert fault.registry_after.statuses[version] == "pending", fault.registry_after
        assert version not in fault.registry_after.aliases.values(), fault.registry_after
        assert_registry_consistent(fault.registry_after)
    final = interrupted_runs.registry_after_final
    assert {final.statuses[v] for v in half_registered} == {"abandoned"}
    assert_registry_consistent(final)


def test_the_next_run_succeeds_and_reuses_the_cached_steps(interrupted_runs):
    assert interrupted_runs.final_returncode == 0, interrupted_runs.final_output[-4000:]
    summary = interrupted_runs.final_summary
    assert summary["status"] == "completed"
    final_run = store_runs(interrupted_runs)["final"]
    for step in ("data_ingestion", "data_preprocessing", "feature_engineering", "model_building", "model_evaluation"):
        assert final_run["steps"][step] == "cached", final_run["steps"]
        assert f"Using cached version of step `{step}`" in interrupted_runs.final_output
    assert final_run["steps"]["register_model"] == final_run["steps"]["promote_model"] == "completed"
    # The run killed during tuning already reused the steps the Ctrl-C'd run had finished.
    assert store_runs(interrupted_runs)["sigkill_tuning"]["steps"]["data_preprocessing"] == "cached"
    # The first complete version, after two abandoned ones, holds both aliases.
    version = summary["registered_model"]["version"]
    final = interrupted_runs.registry_after_final
    assert final.statuses[version] == "complete"
    assert final.aliases == {"production": version, "staging": version}
    assert summary["promotion"]["decision"] == "promoted"
    assert int(version) == max(int(v) for v in final.statuses)


def test_zenml_model_stages_follow_the_aliases(interrupted_runs):
    aliases = interrupted_runs.registry_after_final.aliases
    staged = {(v["stage"], str(v["mlflow_version"])) for v in interrupted_runs.store["model_versions"]
              if v["model"] == MODEL and v["stage"] not in (None, "none", "archived")}
    assert staged == {("production", aliases["production"])}
