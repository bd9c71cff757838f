"""No secret anywhere it should not be, after a run on the azurite stack and preflights of the azure stack.

Searched for: Azurite's storage key and this session's connection string (they live in the ZenML secret
`azurite_storage`), and made-up Azure secrets (a storage connection string with its account key, an MLflow token, a
service principal's secret) given to a preflight of the azure stack. Searched in: every output of run.py, every file
of the workspace and of its ZenML config folder (config, the ZenML and MLflow databases, local artifacts, step logs,
MLflow model files, summary JSON), every blob in Azurite (artifacts and logs of the azurite stack), and every MLflow
param and tag of runs, registered models and model versions. heartml/platform/azurite.py, which defines the
emulator's published development key, is the one place that key may be.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from typing import Dict

import pytest

from heartml.platform import azurite as azurite_service
from tests.azure.conftest import FAST, run_in
from tests.ports import free_port
from tests.secrets_scan import blobs, files, forms, mlflow_values

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def preflight_with_secrets(azurite_runs, tmp_path_factory):
    """`python run.py --stack azure` with every Azure setting and secret given (made up, never sent anywhere): it
    still stops, as this machine has no ZenML server and no Docker, and must register and print no secret."""
    account_key = base64.b64encode(os.urandom(64)).decode()
    made_up = {
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=heartmlsecrets;"
                                           f"AccountKey={account_key};EndpointSuffix=core.windows.net",
        "MLFLOW_TRACKING_TOKEN": secrets.token_urlsafe(32),
        "AZURE_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    env = dict(azurite_runs.env, **made_up)  # azurite_runs.env holds no Azure setting of the developer's
    env.update(AZURE_TENANT_ID=str(uuid.uuid4()), AZURE_CLIENT_ID=str(uuid.uuid4()),
               AZURE_SUBSCRIPTION_ID=str(uuid.uuid4()), AZURE_RESOURCE_GROUP="rg-heartml",
               AZUREML_WORKSPACE="ws-heartml", AZURE_CONTAINER_REGISTRY="heartmlsecrets.azurecr.io",
               MLFLOW_TRACKING_URI="https://mlflow.heartml.invalid", DOCKER_HOST=f"tcp://127.0.0.1:{free_port()}",
               AZURE_CONFIG_DIR=str(tmp_path_factory.mktemp("no-azure-cli")))
    result = run_in(azurite_runs.workspace, env, "run.py", "--stack", "azure", *FAST, check=False)
    return result, {**made_up, "the made-up storage account key": account_key}


@pytest.fixture(scope="module")
def needles(azurite_runs, preflight_with_secrets) -> Dict[str, str]:
    _, made_up = preflight_with_secrets
    return {"Azurite's storage key": azurite_service.ACCOUNT_KEY,
            "the Azurite connection string": azurite_runs.azurite.connection_string, **made_up}


def _defines_the_development_key(where: str) -> bool:
    """heartml/platform/azurite.py in the checkout. Registered models carry heartml.core only, so a copy of it
    anywhere else (the MLflow model files, the `mlflow_model` artifact) counts as a leak."""
    return where.replace("\\", "/").endswith("heartml/platform/azurite.py")


def test_no_secret_in_outputs_files_artifacts_or_mlflow(azurite_runs, azure_preflight, preflight_with_secrets,
                                                          needles):
    from mlflow.tracking import MlflowClient

    workspace = azurite_runs.workspace
    preflight, _ = preflight_with_secrets
    assert preflight.returncode == 2, preflight.stdout[-2000:] + preflight.stderr[-2000:]  # stopped, as expected
    outputs = {"run.py --stack azurite": azurite_runs.first_output,
               "run.py --stack azure (no settings)": azure_preflight.stdout + azure_preflight.stderr,
               "run.py --stack azure (every secret set)": preflight.stdout + preflight.stderr,
               **{f"run.py on {stack}": text for stack, text in azurite_runs.outputs.items()}}
    haystacks = [*((where, text.encode()) for where, text in outputs.items()),
                 *files(workspace.project), *files(workspace.zenml_config), *blobs(azurite_runs.azurite),
                 *mlflow_values(MlflowClient(
                     tracking_uri=f"sqlite:///{workspace.zenml_config / 'local_stores' / 'mlflow' / 'mlflow.db'}"))]
    searched = {"summary JSON": 0, "step logs": 0, "blobs": 0, "MLflow tags": 0, "the key's own definition": 0}
    found = []
    for where, content in haystacks:
        searched["summary JSON"] += where.endswith(".json") and "/out/" in where
        searched["step logs"] += "/logs/" in where
        searched["blobs"] += where.startswith("az://")
        searched["MLflow tags"] += " tag " in where
        for name, value in needles.items():
            if not any(form in content for form in forms(value)):
                continue
            if name == "Azurite's storage key" and _defines_the_development_key(where):
                searched["the key's own definition"] += 1
            else:
                found.append(f"{name} in {where}")
    assert found == []
    # The search reached every kind of place, and does find the key where it is: its one definition in the checkout.
    assert all(searched.values()), searched
    assert searched["the key's own definition"] == 1, searched


def test_secrets_reach_the_components_only_through_zenml_secrets(azurite_runs, needles):
    """The artifact store names the ZenML secret; the secret holds the connection string; the azure preflight
    registered no secret from its environment."""
    code = ("import json; from zenml.client import Client; c = Client(); "
            "store = c.list_stack_components(name='azurite_artifact_store', hydrate=True).items[0]; "
            "print(json.dumps({'configuration': store.configuration, "
            "'secret': c.get_secret('azurite_storage').secret_values, "
            "'secrets': sorted(s.name for s in c.list_secrets(size=100).items)}))")
    result = run_in(azurite_runs.workspace, azurite_runs.env, "-c", code)
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["configuration"]["authentication_secret"] == "azurite_storage"
    assert not {"account_key", "connection_string", "sas_token", "client_secret"} & set(facts["configuration"])
    assert facts["secret"] == {"connection_string": needles["the Azurite connection string"]}
    assert "azure_storage" not in facts["secrets"] and "mlflow_remote" not in facts["secrets"]
