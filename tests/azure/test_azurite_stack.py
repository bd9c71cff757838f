"""The azurite stack for real: `python run.py --stack azurite` starts Azurite itself, every artifact is written to
and read back from Azure Blob Storage (Azurite), and `zenml stack set NAME && python run.py` switches between the
azurite and local stacks, which share one MLflow tracker and registry.

Three pipeline runs in one throw-away workspace (the first one, `azurite_runs`, is shared with
tests/azure/test_secrets.py through tests/azure/conftest.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import heartml.core.sources
from heartml.platform import azurite as azurite_service
from tests.azure.conftest import FAST, inspect_store, run_in, zenml_cli
from tests.azurite import blob_names

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def switched_runs(azurite_runs):
    """`zenml stack set local && python run.py`, then `zenml stack set azurite && python run.py`."""
    runs, workspace, env = azurite_runs, azurite_runs.workspace, azurite_runs.env
    run_in(workspace, env, "-c", "from heartml.platform.declarations import load_stack_decl; "
                          "from heartml.platform.stacks import ensure_stack; "
                                 "ensure_stack(load_stack_decl('local'), activate=False)")
    for stack in ("local", "azurite"):
        zenml_cli(workspace, env, "stack", "set", stack)
        result = run_in(workspace, env, "run.py", *FAST, "--summary-json", f"out/{stack}.json")
        runs.outputs[stack] = _plain(result.stdout + result.stderr)
        runs.summaries[stack] = json.loads((workspace.project / "out" / f"{stack}.json").read_text())
    return runs


@pytest.fixture(scope="module")
def store(azurite_runs, azure_preflight):
    """The workspace's ZenML store read back in a process of its own, after the runs and the preflight."""
    return inspect_store(azurite_runs.workspace, azurite_runs.env, azurite_runs.summaries["first"]["run_id"])


def test_run_py_starts_azurite_and_says_where_its_data_lives(azurite_runs):
    match = re.search(r"Azurite was not running: started it \(pid (\d+)\) at (\S+); its data lives in (\S+) ",
                      azurite_runs.first_output)
    assert match, azurite_runs.first_output[:2000]
    pid, endpoint, location = int(match.group(1)), match.group(2), Path(match.group(3))
    assert endpoint == azurite_runs.azurite.blob_endpoint
    assert location == azurite_runs.azurite.location
    assert azurite_service.running_pid(azurite_runs.azurite) == pid
    # It outlives run.py: the artifacts it holds stay readable.
    assert azurite_service.is_azurite(azurite_service.probe("127.0.0.1", azurite_runs.azurite.port))
    assert "created secret 'azurite_storage'" in azurite_runs.first_output
    assert "registered stack 'azurite'" in azurite_runs.first_output
    assert azurite_runs.summaries["first"]["status"] == "completed"


def test_every_artifact_is_a_blob_in_azurite_and_loads_back(azurite_runs, store):
    run = store["runs"][azurite_runs.summaries["first"]["run_id"]]
    assert run["stack"] == "azurite" and run["artifact_store_path"] == "az://zenml-artifacts"
    artifacts = run["artifacts"]
    assert {"raw_dataset", "train_set", "test_set", "preprocessing", "feature_pipeline", "model", "test_metrics",
            "registered_model"} <= set(artifacts)
    for name, artifact in artifacts.items():
        assert artifact["uri"].startswith("az://zenml-artifacts/"), (name, artifact["uri"])
        blobs = blob_names(azurite_runs.azurite, "zenml-artifacts", artifact["uri"].removeprefix("az://zenml-artifacts/"))
        assert blobs, f"{name}: no blob under {artifact['uri']}"
    # Loaded back from Azurite, with the values the run reported.
    assert artifacts["raw_dataset"]["rows"] == 918
    assert artifacts["model"]["type"] == "sklearn.pipeline.Pipeline"
    summary_metrics = azurite_runs.summaries["first"]["test_metrics"]
    assert artifacts["test_metrics"]["value"]["roc_auc"] == pytest.approx(summary_metrics["roc_auc"])


def test_the_storage_key_stays_in_the_zenml_secret(azurite_runs):
    assert azurite_service.ACCOUNT_KEY not in azurite_runs.first_output
    config = (azurite_runs.workspace.project / "configs" / "stacks" / "azurite.yaml").read_text()
    assert "AccountKey" not in config


def test_zenml_stack_set_switches_between_azurite_and_local(switched_runs):
    local, azurite = switched_runs.summaries["local"], switched_runs.summaries["azurite"]
    assert (local["stack"], local["status"]) == ("local", "completed")
    assert (azurite["stack"], azurite["status"]) == ("azurite", "completed")
    # Same data, config and seed on both stacks: same test metrics.
    assert local["test_metrics"] == pytest.approx(switched_runs.summaries["first"]["test_metrics"])
    assert azurite["test_metrics"] == pytest.approx(local["test_metrics"])
    # Back on azurite the unchanged steps come from the cache held in Azurite; nothing is registered again.
    assert "Using cached version of step `model_building`" in switched_runs.outputs["azurite"]
    for output in switched_runs.outputs.values():
        assert not re.search(r"^(registered|updated|created) ", output, re.MULTILINE), output[:3000]
    assert "Azurite is running at" in switched_runs.outputs["azurite"]


def test_both_stacks_share_one_mlflow_registry(switched_runs):
    summaries = [switched_runs.summaries[k] for k in ("first", "local", "azurite")]
    assert len({s["mlflow_tracking_uri"] for s in summaries}) == 1
    tracking_uri = summaries[0]["mlflow_tracking_uri"]
    database = switched_runs.workspace.zenml_config / "local_stores" / "mlflow" / "mlflow.db"
    assert tracking_uri == f"sqlite:///{database}"
    versions = [int(s["registered_model"]["version"]) for s in summaries]
    assert versions == sorted(versions) and len(set(versions)) == 3

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name = summaries[0]["registered_model"]["name"]
    registered = {int(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert set(versions) <= registered
    # Model files sit beside the database, not in the working directory.
    for version in versions:
        source = client.get_model_version_download_uri(name, str(version))
        assert source.startswith((database.parent / "artifacts").as_uri()), source


def test_azure_preflight_lists_what_is_missing_and_registers_nothing(azure_preflight, store):
    result = azure_preflight
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines[0] == ("error: stack 'azure' (configs/stacks/azure.yaml) is not ready; nothing was registered or "
                        "submitted. Missing:")
    problems = "\n".join(lines[1:])
    for topic in ("ZenML server: this machine records runs in a local database",
                  "Docker or a parent image: no Docker daemon answers here",
                  "Azure credentials: no service principal and no Azure CLI login found"):
        assert topic in problems
    for variable in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AZURE_CONTAINER_REGISTRY",
                     "AZURE_STORAGE_CONNECTION_STRING", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"):
        assert f"  - {variable} is not set" in problems, variable
    assert len(lines) == 1 + 3 + 7
    assert "azure" not in store["stacks"]
    assert not {"azure_storage", "mlflow_remote"} & set(store["secrets"])


def test_an_az_source_feeds_the_pipeline_on_azurite(azurite_runs):
    """Data read from Azure Blob Storage, artifacts written to it: the cloud layout, on this machine."""
    from azure.storage.blob import BlobServiceClient

    endpoint = azurite_runs.azurite
    heart = heartml.core.sources.read_source("bundled://heart")
    container = BlobServiceClient.from_connection_string(endpoint.connection_string).get_container_client("clinical")
    if not container.exists():
        container.create_container()
    container.upload_blob("heart/heart.csv", heart.to_csv(index=False).encode(), overwrite=True)
    env = dict(azurite_runs.env, AZURE_STORAGE_CONNECTION_STRING=endpoint.connection_string)

    run_in(azurite_runs.workspace, env, "run.py", "--stack", "azurite", *FAST, "--source", "az://clinical/heart/heart.csv",
           "--summary-json", "out/az-source.json")

    summary = json.loads((azurite_runs.workspace.project / "out" / "az-source.json").read_text())
    assert summary["test_metrics"] == pytest.approx(azurite_runs.summaries["first"]["test_metrics"])
    data_version = inspect_store(azurite_runs.workspace, env, summary["run_id"])["runs"][summary["run_id"]]["artifacts"]
    assert data_version["data_version"]["value"]["source"] == "az://clinical/heart/heart.csv"
    assert data_version["raw_dataset"]["uri"].startswith("az://zenml-artifacts/")


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
