"""Fixtures of the Azure tests: Azurite and a ZenML server (session-wide, started once); the azurite stack run for
real and a preflight of the azure stack (session-wide, shared by test_azurite_stack.py and test_secrets.py); and a
workspace environment that holds no Azure settings of the developer's shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict

import pytest

from heartml.platform import azurite as azurite_service
from tests.azurite import azurite  # noqa: F401  (session fixture)
from tests.conftest import Workspace, make_workspace
from tests.ports import free_port
from tests.zenml_server import zenml_server  # noqa: F401  (session fixture)

FAST = ("--config", "tests/configs/training-fast.yaml")

# Settings a developer may have exported for a real Azure workspace; never let them leak into a test.
_AZURE_PREFIXES = ("AZURE_", "AZUREML_", "AZURITE_", "MLFLOW_", "HEARTML_", "DOCKER_HOST", "IDENTITY_ENDPOINT",
                   "MSI_ENDPOINT")


def clean_env(workspace: Workspace, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in workspace.env.items() if not k.startswith(_AZURE_PREFIXES)}
    env.update(extra)
    return env


CONTRACT_MLFLOW_TOKEN = "contract-mlflow-token"


def contract_env(workspace: Workspace, zenml_server_url: str, azure_storage: str, mlflow_uri: str,
                 **extra: str) -> Dict[str, str]:
    """The azure stack's settings for a contract test: a made-up workspace and registry, the loopback ZenML server,
    Azurite for storage, an MLflow URI, and `extra`."""
    return clean_env(workspace, ZENML_STORE_URL=zenml_server_url,
                     AZURE_SUBSCRIPTION_ID="00000000-0000-0000-0000-000000000000",
                     AZURE_RESOURCE_GROUP="contract-rg", AZUREML_WORKSPACE="contract-ws",
                     AZURE_CONTAINER_REGISTRY="contractacr.azurecr.io", AZURE_STORAGE_CONNECTION_STRING=azure_storage,
                     MLFLOW_TRACKING_URI=mlflow_uri, MLFLOW_TRACKING_TOKEN=CONTRACT_MLFLOW_TOKEN, **extra)


def run_in(workspace: Workspace, env: Dict[str, str], *args: str, check: bool = True,
           timeout: int = 600) -> subprocess.CompletedProcess:
    """`python ARGS` in the workspace with `env`; fails with the output when `check` and the exit is not 0."""
    result = subprocess.run([sys.executable, *args], cwd=workspace.project, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} exited {result.returncode}\n"
                             f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}")
    return result


def zenml_cli(workspace: Workspace, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The `zenml` command a user types, from the same environment as the tests."""
    zenml = os.path.join(os.path.dirname(sys.executable), "zenml")
    result = subprocess.run([zenml, *args], cwd=workspace.project, env=env, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"zenml {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def inspect_store(workspace: Workspace, env: Dict[str, str], *run_ids: str) -> dict:
    """tests/azure/inspect_store.py's JSON (its last line of output; ZenML logs to stdout before it)."""
    output = run_in(workspace, env, "-m", "tests.azure.inspect_store", *run_ids).stdout
    return json.loads(output.strip().splitlines()[-1])


@dataclass
class AzuriteRuns:
    workspace: Workspace
    env: Dict[str, str]
    azurite: azurite_service.Azurite
    first_output: str = ""
    summaries: Dict[str, dict] = field(default_factory=dict)
    outputs: Dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def azurite_runs(tmp_path_factory):
    """`python run.py --stack azurite` with no Azurite running on the chosen (free) port: run.py starts it."""
    base = tmp_path_factory.mktemp("azurite-stack")
    workspace = make_workspace(base)
    endpoint = azurite_service.Azurite(host="127.0.0.1", port=free_port(), location=base / "azurite-data")
    env = clean_env(workspace, AZURITE_BLOB_PORT=str(endpoint.port), AZURITE_LOCATION=str(endpoint.location))
    runs = AzuriteRuns(workspace=workspace, env=env, azurite=endpoint)
    try:
        result = run_in(workspace, env, "run.py", "--stack", "azurite", *FAST, "--summary-json", "out/first.json")
        runs.first_output = result.stdout + result.stderr
        runs.summaries["first"] = json.loads((workspace.project / "out" / "first.json").read_text())
        yield runs
    finally:
        azurite_service.stop(endpoint)  # the Azurite run.py started, by the pid it saved


@pytest.fixture(scope="session")
def azure_preflight(azurite_runs, tmp_path_factory):
    """`python run.py --stack azure` on this machine: no server, no Docker, no Azure settings or credentials."""
    env = dict(azurite_runs.env, DOCKER_HOST=f"tcp://127.0.0.1:{free_port()}",
               AZURE_CONFIG_DIR=str(tmp_path_factory.mktemp("no-azure-cli")))
    return run_in(azurite_runs.workspace, env, "run.py", "--stack", "azure", *FAST, check=False)
