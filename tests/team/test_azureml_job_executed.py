"""The Azure ML job executed: the pipeline job ZenML's AzureML orchestrator compiles for the azure stack runs here,
node by node in its dependency order, each node's own command with what Azure ML gives its container, against the
team stack (ZenML server, MLflow server, Azurite). Missing are only the container image (this machine's Python
environment stands in for it) and the compute cluster (the nodes run here, each as soon as its inputs are
complete). The two calls steps make that would leave the machine (ZenML reading the job's Studio URL, the Azure ML
model registry's create) are intercepted (tests/azure/execute_azureml_job.py, tests/azure/step_boundary/). The run
completes in the ZenML server and a new version lands in the MLflow registry, promoted and registered in the
workspace's model registry too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from heartml.platform.azurite import ensure_container
from heartml.registry.model_versions import COMPLETE, STATUS_TAG
from tests.conftest import config_with_model_name, make_workspace
from tests.team.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow
MODEL = "heart_failure_azureml"
CONTAINER = "azureml-artifacts"


@pytest.fixture(scope="module")
def executed(team_stack, trained_on_team, tmp_path_factory):
    base = tmp_path_factory.mktemp("azureml-executed")
    workspace = make_workspace(base)
    ensure_container(team_stack.team.azurite.connection_string, CONTAINER)
    env = team_stack.env("trainer", ZENML_CONFIG_PATH=str(base / "zenml-client"),
                         AZURE_SUBSCRIPTION_ID="00000000-0000-0000-0000-000000000000",
                         AZURE_RESOURCE_GROUP="executed-rg", AZUREML_WORKSPACE="executed-ws",
                         AZURE_CONTAINER_REGISTRY="executedacr.azurecr.io",
                         AZURE_STORAGE_CONNECTION_STRING=team_stack.team.azurite.connection_string,
                         AZURE_STORAGE_CONTAINER=CONTAINER, AZUREML_COMPUTE_NAME="executed-cpu",
                         HEARTML_PARENT_IMAGE="executedacr.azurecr.io/heartml-base:1")
    config = config_with_model_name(workspace, MODEL, base=TINY_CONFIG)
    output = base / "out"
    output.mkdir()
    result = subprocess.run([sys.executable, "-m", "tests.azure.execute_azureml_job", config, str(output)],
                            cwd=workspace.project, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    facts = json.loads((output / "executed.json").read_text())
    facts["logs"] = {path.stem: path.read_text()[-3000:] for path in output.glob("*.log")}
    facts["code_unpacked_in"] = sorted(path.parent.name for path in (output / "containers").glob("*/code"))
    return facts


def test_every_node_runs_in_dependency_order_and_the_run_completes_in_zenml(executed):
    steps = [entry["step"] for entry in executed["executed"]]
    failed = [entry for entry in executed["executed"] if entry["returncode"] != 0]
    assert failed == [], executed["logs"].get(failed[0]["step"] if failed else "", "")
    assert sorted(steps) == executed["nodes"]  # every node of the compiled job, once
    ended = {entry["step"]: entry["ended"] for entry in executed["executed"]}
    for entry in executed["executed"]:
        assert all(ended[upstream] <= entry["started"] for upstream in entry["upstream"]), entry  # after its inputs
        assert entry["completed_output"], entry  # the output the next nodes wait for
    at_once = {(a["step"], b["step"]) for a in executed["executed"] for b in executed["executed"]
               if a["step"] < b["step"] and a["started"] < b["ended"] and b["started"] < a["ended"]}
    assert at_once, "no two independent nodes ran at the same time"  # as Azure ML schedules them
    assert executed["code_unpacked_in"] == sorted(steps)  # each node in its own /app, as in its own container
    assert executed["run_status"] == "completed"
    assert executed["orchestrator_run_id"] == executed["job_name"]  # the job Azure ML would have run
    assert set(executed["steps_in_zenml"]) == set(steps)
    assert set(executed["steps_in_zenml"].values()) == {"completed"}


def test_a_new_version_lands_in_the_mlflow_registry_and_the_workspace_registry(team_stack, executed):
    with team_stack.mlflow("reader") as client:
        (version,) = client.search_model_versions(f"name = '{MODEL}'")
        production = client.get_model_version_by_alias(MODEL, "production")
    assert version.tags[STATUS_TAG] == COMPLETE and production.version == version.version
    models = [entry["workspace_model"] for entry in executed["boundary"] if "workspace_model" in entry]
    assert len(models) == 1
    assert models[0]["type"] == "mlflow_model" and models[0]["name"] == MODEL
    assert models[0]["version"] == version.version and models[0]["tags"]["registration_status"] == COMPLETE
    assert "MLmodel" in models[0]["files"]


def test_the_steps_got_no_credential_of_the_submitter_and_nothing_left_the_machine(executed):
    assert [entry for entry in executed["boundary"] if "outbound" in entry] == []
    assert {entry["job_lookup"] for entry in executed["boundary"] if "job_lookup" in entry} == {executed["job_name"]}
    assert executed["compile_outbound"] == []
    for step, keys in executed["step_env_keys"].items():
        assert {"ZENML_STORE_URL", "ZENML_STORE_API_TOKEN"} <= set(keys), step  # the run's own token
        assert not {"ZENML_STORE_API_KEY", "MLFLOW_TRACKING_PASSWORD", "AZURE_STORAGE_CONNECTION_STRING"} & set(keys)
