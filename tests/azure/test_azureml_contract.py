"""Contract of the azure stack: the real training pipeline, on the real configs/stacks/azure.yaml and
configs/docker.yaml, compiles into the Azure ML pipeline job we expect.

Real parts: a ZenML server on loopback (the orchestrator refuses a local store), Azurite as the artifact store (the
code archive is uploaded to it), ZenML's AzureML orchestrator and azure-ai-ml building the PipelineJob.
THE CLOUD BOUNDARY: only `JobOperations.create_or_update` (the call that submits the job to Azure ML) and
`ComputeOperations.get` (the call that looks the compute cluster up) are intercepted, in
tests/azure/compile_azureml_job.py; a socket guard there records any attempt to reach beyond this machine.

The stack's MLflow tracker points at a closed loopback port: ZenML only checks that the URI is http(s) with one
credential, and nothing contacts MLflow while a pipeline is compiled and submitted (asserted below), so no MLflow
server is started.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.azure.conftest import CONTRACT_MLFLOW_TOKEN, contract_env, run_in
from tests.azurite import blob_names
from tests.conftest import make_workspace
from tests.ports import free_port

pytestmark = pytest.mark.azurite

STAGES = {"data_ingestion", "data_preprocessing", "feature_engineering", "model_building", "model_evaluation",
          "register_model"}
# Data flow of the training pipeline (each step also depends on at least these).
KNOWN_EDGES = {
    "data_preprocessing": {"data_ingestion"},
    "feature_engineering": {"data_preprocessing"},
    "model_building": {"data_preprocessing", "feature_engineering"},
    "model_evaluation": {"data_preprocessing", "model_building"},
    "register_model": {"data_ingestion", "model_building", "model_evaluation"},
}
PARENT_IMAGE = "contractacr.azurecr.io/heartml-base:contract"
COMPUTE = "contract-cpu"
TOKEN = CONTRACT_MLFLOW_TOKEN


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, zenml_server, azurite):
    from heartml.platform.azurite import ensure_container

    base = tmp_path_factory.mktemp("azureml-contract")
    workspace = make_workspace(base)
    ensure_container(azurite.connection_string, "zenml-artifacts")
    mlflow_port = free_port()  # nothing listens here
    env = contract_env(workspace, zenml_server.url, azurite.connection_string, f"http://127.0.0.1:{mlflow_port}",
                       AZUREML_COMPUTE_NAME=COMPUTE, AZUREML_STEP_OPERATOR="true", HEARTML_PARENT_IMAGE=PARENT_IMAGE)
    output = base / "out"
    output.mkdir()
    run_in(workspace, env, "-m", "tests.azure.compile_azureml_job", str(output))
    result = json.loads((output / "contract.json").read_text())
    result["mlflow_port"] = mlflow_port
    result["job_yaml"] = (output / "azureml_pipeline_job.yaml").read_text()
    result["server_url"] = zenml_server.url
    return result


def test_stack_is_registered_from_the_declaration_with_secrets_from_the_environment(compiled):
    changes = compiled["stack_changes"]
    assert {"created secret 'azure_storage'", "created secret 'mlflow_remote'", "registered stack 'azure'",
            "registered orchestrator 'azureml_orchestrator'", "registered step_operator 'azureml_trainer'",
            "registered experiment_tracker 'mlflow_remote_tracker'"} <= set(changes)
    assert compiled["store_url"] == compiled["server_url"]


def test_one_command_node_per_pipeline_step(compiled):
    job = compiled["job"]
    assert compiled["submitted_jobs"] == 1
    assert job["class"] == "azure.ai.ml.entities._job.pipeline.pipeline_job.PipelineJob" and job["type"] == "pipeline"
    assert job["display_name"].startswith("training_pipeline_")
    assert set(job["nodes"]) == set(compiled["snapshot_steps"])
    assert STAGES <= set(job["nodes"])
    for name, node in job["nodes"].items():
        assert node["node_type"] == "Command" and node["display_name"] == name
        assert node["outputs"] == ["completed"]


def test_dependency_edges_follow_the_pipeline(compiled):
    nodes = compiled["job"]["nodes"]
    for name, node in nodes.items():
        upstream = set(compiled["snapshot_steps"][name]["upstream"])
        assert set(node["inputs"]) == upstream, name
        for parent in upstream:
            assert node["inputs"][parent] == f"${{{{parent.jobs.{parent}.outputs.completed}}}}"
    assert nodes["data_ingestion"]["inputs"] == {}
    for name, parents in KNOWN_EDGES.items():
        assert parents <= set(nodes[name]["inputs"]), name


def test_job_runs_on_the_configured_compute_cluster(compiled):
    job = compiled["job"]
    assert job["compute"] == COMPUTE
    assert job["default_compute"] is None  # not serverless
    assert compiled["compute_lookups"] == [COMPUTE]
    assert all(node["compute"] is None for node in job["nodes"].values())  # every step inherits the job's cluster
    assert job["force_rerun"] is True


def test_every_step_runs_the_parent_image_with_code_from_the_artifact_store(compiled, azurite):
    for node in compiled["job"]["nodes"].values():
        assert node["image"] == PARENT_IMAGE
        assert node["environment_name"] == "training_pipeline"
    assert compiled["docker"] == {"parent_image": PARENT_IMAGE, "skip_build": True,
                                  "allow_download_from_artifact_store": True}
    code = compiled["code_path"]
    assert code.startswith("az://zenml-artifacts/code_uploads/") and code.endswith(".tar.gz")
    assert blob_names(azurite, "zenml-artifacts", code.removeprefix("az://zenml-artifacts/"))


def test_step_commands_run_this_snapshot_against_the_server(compiled):
    for name, node in compiled["job"]["nodes"].items():
        assert node["program"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
        assert node["arguments"] == {
            "--entrypoint_config_source": "zenml.integrations.azure.orchestrators."
                                          "azureml_orchestrator_entrypoint_config.AzureMLEntrypointConfiguration",
            "--snapshot_id": compiled["snapshot_id"],
            "--step_name": name,
        }
        env = node["env"]
        assert env["ZENML_STORE_URL"] == compiled["server_url"] and env["ZENML_STORE_TYPE"] == "rest"
        assert env["ZENML_ACTIVE_STACK_ID"] == compiled["stack_id"]
        assert env["ZENML_ACTIVE_PROJECT_ID"] == compiled["project_id"]


def test_training_step_goes_to_the_step_operator(compiled):
    operators = {name: step["step_operator"] for name, step in compiled["snapshot_steps"].items()}
    assert operators.pop("model_building") == "azureml_trainer"
    assert set(operators.values()) == {None}


def test_no_secret_travels_in_the_job(compiled, azurite):
    from heartml.platform.azurite import ACCOUNT_KEY

    dumped = yaml.safe_load(compiled["job_yaml"])
    assert dumped["type"] == "pipeline" and set(dumped["jobs"]) and len(dumped["jobs"]) == len(compiled["job"]["nodes"])
    text = compiled["job_yaml"] + json.dumps(compiled["job"])
    for secret in (TOKEN, ACCOUNT_KEY, azurite.connection_string):
        assert secret not in text


def test_nothing_left_the_machine_and_the_run_waits_in_azure_ml(compiled):
    assert compiled["outbound"] == []
    assert compiled["mlflow_connections"] == []
    assert compiled["run_status"] in {"initializing", "provisioning"}
    assert compiled["run_metadata"]["orchestrator_run_id"] == "contract-azureml-job"
