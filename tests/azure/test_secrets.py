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
import gzip
import io
import json
import os
import secrets
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Tuple
from urllib.parse import quote

import pytest

from heartml.platform import azurite as azurite_service
from tests.azure.conftest import FAST, run_in
from tests.ports import free_port

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


def _forms(value: str) -> Tuple[bytes, ...]:
    return tuple({value.encode(), quote(value, safe="").encode()})


def _defines_the_development_key(where: str) -> bool:
    """heartml/platform/azurite.py in the checkout. Registered models carry heartml.core only, so a copy of it
    anywhere else (the MLflow model files, the `mlflow_model` artifact) counts as a leak."""
    return where.replace("\\", "/").endswith("heartml/platform/azurite.py")


def _unpacked(where: str, content: bytes) -> Iterator[Tuple[str, bytes]]:
    """The content as stored, or for an archive each file in it: ZenML stores folders as .tar.gz, which would
    hide their text from a byte search. Parquet tables come with their cells as text too."""
    if content[:2] == b"\x1f\x8b":
        yield from _unpacked(where, gzip.decompress(content))
    elif content[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(content)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    yield from _unpacked(f"{where}/{member.name}", archive.extractfile(member).read())
    elif content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for name in archive.namelist():
                yield from _unpacked(f"{where}/{name}", archive.read(name))
    elif content[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(content))
        yield where, content + (str(table.schema.metadata) + table.to_pandas().to_csv()).encode()
    else:
        yield where, content


def _files(folder: Path) -> Iterator[Tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield from _unpacked(str(path), path.read_bytes())


def _blobs(endpoint) -> Iterator[Tuple[str, bytes]]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(endpoint.connection_string)
    for container in service.list_containers():
        client = service.get_container_client(container.name)
        for blob in client.list_blobs():
            yield from _unpacked(f"az://{container.name}/{blob.name}", client.download_blob(blob.name).readall())


def _mlflow_values(database: Path) -> Iterator[Tuple[str, bytes]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(experiments, max_results=5000):
        for kind, values in (("param", run.data.params), ("tag", run.data.tags)):
            for key, value in values.items():
                yield f"MLflow run {run.info.run_name} {kind} {key}", f"{key}={value}".encode()
    for model in client.search_registered_models():
        for key, value in model.tags.items():
            yield f"registered model {model.name} tag {key}", f"{key}={value}".encode()
        for version in client.search_model_versions(f"name = '{model.name}'"):
            for key, value in version.tags.items():
                yield f"{model.name} v{version.version} tag {key}", f"{key}={value}".encode()


def test_no_secret_in_outputs_files_artifacts_or_mlflow(azurite_runs, azure_preflight, preflight_with_secrets,
                                                          needles):
    workspace = azurite_runs.workspace
    preflight, _ = preflight_with_secrets
    assert preflight.returncode == 2, preflight.stdout[-2000:] + preflight.stderr[-2000:]  # stopped, as expected
    outputs = {"run.py --stack azurite": azurite_runs.first_output,
               "run.py --stack azure (no settings)": azure_preflight.stdout + azure_preflight.stderr,
               "run.py --stack azure (every secret set)": preflight.stdout + preflight.stderr,
               **{f"run.py on {stack}": text for stack, text in azurite_runs.outputs.items()}}
    haystacks = [*((where, text.encode()) for where, text in outputs.items()),
                 *_files(workspace.project), *_files(workspace.zenml_config), *_blobs(azurite_runs.azurite),
                 *_mlflow_values(workspace.zenml_config / "local_stores" / "mlflow" / "mlflow.db")]
    searched = {"summary JSON": 0, "step logs": 0, "blobs": 0, "MLflow tags": 0, "the key's own definition": 0}
    found = []
    for where, content in haystacks:
        searched["summary JSON"] += where.endswith(".json") and "/out/" in where
        searched["step logs"] += "/logs/" in where
        searched["blobs"] += where.startswith("az://")
        searched["MLflow tags"] += " tag " in where
        for name, value in needles.items():
            if not any(form in content for form in _forms(value)):
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
