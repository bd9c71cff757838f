"""Two `python run.py --stack local --no-cache` started together on a fresh workspace: both create the ZenML store,
the stack, the MLflow database, the registered model and the ZenML model at the same moment, then train, register
and promote side by side."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import MODEL, RegistryState, assert_registry_consistent

pytestmark = pytest.mark.slow


def test_both_runs_finish(concurrent_runs):
    for returncode, output in zip(concurrent_runs.returncodes, concurrent_runs.outputs):
        assert returncode == 0, output[-5000:]
        assert "database is locked" not in output
    assert [s["status"] for s in concurrent_runs.summaries] == ["completed", "completed"]


def test_model_versions_are_unique_and_production_is_complete(concurrent_runs):
    versions = [s["registered_model"]["version"] for s in concurrent_runs.summaries]
    assert len(set(versions)) == 2
    registry = RegistryState.read(concurrent_runs.workspace)
    assert sorted(registry.statuses) == sorted(versions)
    assert set(registry.statuses.values()) == {"complete"}
    assert_registry_consistent(registry)
    # staging never moves back to the older one; production went to a run whose gate promoted it.
    assert registry.aliases["staging"] == max(versions, key=int)
    promoted = {s["registered_model"]["version"] for s in concurrent_runs.summaries
                if s["promotion"]["decision"] == "promoted"}
    assert registry.aliases["production"] in promoted


def test_the_zenml_store_holds_two_completed_runs_and_two_model_versions(concurrent_runs):
    runs = concurrent_runs.store["runs"]
    assert sorted(r["name"] for r in runs) == sorted(s["run_name"] for s in concurrent_runs.summaries)
    assert {r["status"] for r in runs} == {"completed"}
    for run in runs:  # --no-cache: every step ran in each process
        assert set(run["steps"].values()) == {"completed"}, run["steps"]
    versions = [v for v in concurrent_runs.store["model_versions"] if v["model"] == MODEL]
    assert sorted(v["number"] for v in versions) == [1, 2]
    registry = RegistryState.read(concurrent_runs.workspace)
    stages = {str(v["mlflow_version"]): v["stage"] for v in versions}
    assert stages[registry.aliases["production"]] == "production"
    if registry.aliases["staging"] != registry.aliases["production"]:
        assert stages[registry.aliases["staging"]] == "staging"
