"""Contract of `python run.py serve --stack azure`: the production version becomes an Azure ML managed online
endpoint with a no-code MLflow deployment of the registered model's own files.

Real parts: a ZenML server and an MLflow tracking server on loopback (the azure stack's tracker points at it), the
azure stack registered from configs/stacks/azure.yaml, a model version registered and promoted by the project's code,
configs/serving.yaml, azure-ai-ml building ManagedOnlineEndpoint / ManagedOnlineDeployment. THE CLOUD BOUNDARY: only
the two calls that would create them in Azure are intercepted (tests/azure/deploy_online_endpoint.py), and a socket
guard records any attempt to leave the machine. The stack checks that come before (the same as training's) are
tested on their own: on this machine they refuse, with training's lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from tests.azure.conftest import contract_env, run_in
from tests.conftest import make_workspace
from tests.ports import free_port
from tests.serving import wait_for_http

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}", "--artifacts-destination",
         (base / "artifacts").as_uri(), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", process, "mlflow server", timeout=120)
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, zenml_server, azurite, mlflow_server):
    base = tmp_path_factory.mktemp("endpoint-contract")
    workspace = make_workspace(base)
    env = contract_env(workspace, zenml_server.url, azurite.connection_string, mlflow_server)
    output = base / "out"
    output.mkdir()
    result = run_in(workspace, env, "-m", "tests.azure.deploy_online_endpoint", str(output))
    return {**json.loads((output / "endpoint.json").read_text()), "stdout": result.stdout,
            "config": yaml.safe_load((workspace.project / "configs/serving.yaml").read_text())["azure"]}


def test_the_endpoint_and_its_deployment_are_declared_by_configs_serving_yaml(deployed):
    config = deployed["config"]
    first, with_traffic = deployed["endpoints"]  # created, then given the deployment's traffic
    assert first["name"] == with_traffic["name"] == config["endpoint_name"]
    assert first["auth_mode"] == config["auth_mode"] and first["traffic"] == {}
    assert with_traffic["traffic"] == {config["deployment_name"]: 100}
    (deployment,) = deployed["deployments"]
    assert deployment["name"] == config["deployment_name"] and deployment["endpoint_name"] == config["endpoint_name"]
    assert deployment["instance_type"] == config["instance_type"]
    assert deployment["instance_count"] == config["instance_count"]
    assert deployment["request_timeout_ms"] == config["request_timeout_ms"]


def test_it_deploys_the_registered_mlflow_model_as_is(deployed):
    (deployment,) = deployed["deployments"]
    model = deployment["model"]
    version = deployed["version"]
    assert model["type"] == "mlflow_model" and model["name"] == "heart_failure_classifier"
    assert model["version"] == version
    # No-code MLflow deployment: no environment or scoring script of ours; Azure ML builds both from the model.
    assert deployment["environment"] is None and deployment["code_configuration"] is None
    assert {"MLmodel", "requirements.txt", "python_env.yaml", "model.pkl"} <= set(model["files"])
    assert "code/heartml/registry/record_guard.py" in model["files"]  # the guard travels with it
    assert "predict_fn: predict_proba" in deployment["mlmodel"]  # probabilities, not hard labels
    tags = {"mlflow_model": "heart_failure_classifier", "mlflow_version": version, "alias": "production",
            "decision_threshold": "0.4"}
    assert model["tags"] == tags and deployment["tags"] == tags and deployed["endpoints"][0]["tags"] == tags


def test_the_production_version_is_registered_in_the_workspace_beside_mlflow(deployed):
    (model,) = deployed["workspace_models"]
    version = deployed["version"]
    assert model["type"] == "mlflow_model" and model["name"] == "heart_failure_classifier"
    assert model["version"] == version
    assert {"MLmodel", "requirements.txt", "model.pkl"} <= set(model["files"])
    # The MLflow version's own tags (status, data version, threshold, ...) and where it came from.
    assert model["tags"] == {**deployed["mlflow_tags"], "mlflow_model": "heart_failure_classifier",
                             "mlflow_version": version, "alias": "production"}
    assert model["tags"]["registration_status"] == "complete" and model["tags"]["decision_threshold"] == "0.4"
    assert (f"Registered in Azure ML workspace contract-ws: model heart_failure_classifier version {version}"
            in deployed["stdout"])


def test_nothing_left_the_machine_and_run_py_says_where_it_serves(deployed):
    assert deployed["outbound"] == []
    assert ("Azure ML endpoint heartml-scoring (workspace contract-ws) serves heart_failure_classifier version "
            f"{deployed['version']} (production); deployment blue takes 100% of traffic") in deployed["stdout"]
    assert "Scoring URI: https://heartml-scoring.westeurope.inference.ml.azure.com/score" in deployed["stdout"]


def test_serve_on_the_azure_stack_makes_trainings_checks_first(azurite_runs, azure_preflight, tmp_path):
    """Without Azure settings on this machine, `serve --stack azure` refuses with the lines training gives."""
    env = dict(azurite_runs.env, DOCKER_HOST=f"tcp://127.0.0.1:{free_port()}", AZURE_CONFIG_DIR=str(tmp_path))
    result = run_in(azurite_runs.workspace, env, "run.py", "serve", "--stack", "azure", check=False)
    assert result.returncode == azure_preflight.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr

    def errors(output: str) -> list:
        return [line for line in output.splitlines() if line.startswith("error: ")]

    assert errors(result.stderr) == errors(azure_preflight.stderr) and len(errors(result.stderr)) > 3
