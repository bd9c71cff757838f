"""The azure stack's preflight: each missing piece is one plain sentence; nothing here touches the network."""

import json
import stat

import pytest

from heartml.platform import azure
from heartml.platform.declarations import load_stack_decl
from tests.ports import free_port

CREDENTIAL_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                        "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure-cli"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no `az` on PATH
    return monkeypatch


@pytest.mark.parametrize("store_type, url, expected", [
    ("sql", "sqlite:////home/me/.config/zenml/local_stores/default_zen_store/zenml.db",
     "ZenML server: this machine records runs in a local database (sqlite:////home/me/.config/zenml/"),
    ("rest", "http://127.0.0.1:8237", "ZenML server: http://127.0.0.1:8237 runs on this machine"),
    ("rest", "http://localhost:8080", "ZenML server: http://localhost:8080 runs on this machine"),
    ("rest", "https://zenml.example.org", None),
])
def test_zenml_server_must_be_reachable_from_azure(store_type, url, expected):
    problem = azure.zenml_server_problem(store_type, url)
    assert problem == expected if expected is None else problem.startswith(expected)


def test_docker_daemon_or_parent_image(monkeypatch):
    monkeypatch.delenv(azure.PARENT_IMAGE_VARIABLE, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")  # nothing listens there
    problem = azure.docker_problem()
    assert problem.startswith("Docker or a parent image: no Docker daemon answers here")
    assert "set HEARTML_PARENT_IMAGE to a prebuilt image" in problem
    monkeypatch.setenv(azure.PARENT_IMAGE_VARIABLE, "myacr.azurecr.io/heartml-base:1")
    assert azure.docker_problem() is None


def test_azure_credentials(no_credentials, tmp_path):
    assert azure.azure_credentials_problem() == (
        "Azure credentials: no service principal and no Azure CLI login found. Run `az login`, or set "
        "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.")
    no_credentials.setenv("AZURE_CLIENT_ID", "app")
    assert "(only AZURE_CLIENT_ID is set)" in azure.azure_credentials_problem()
    no_credentials.setenv("AZURE_TENANT_ID", "tenant")
    no_credentials.setenv("AZURE_CLIENT_SECRET", "secret")
    assert azure.azure_credentials_problem() is None


def test_azure_cli_login_counts_as_credentials(no_credentials, tmp_path):
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text("#!/bin/sh\n")
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    profile = tmp_path / "azure-cli" / "azureProfile.json"
    profile.parent.mkdir()
    profile.write_text(json.dumps({"subscriptions": []}), encoding="utf-8-sig")
    assert azure.azure_credentials_problem() is not None  # CLI installed, nobody logged in
    profile.write_text(json.dumps({"subscriptions": [{"id": "sub", "isDefault": True}]}), encoding="utf-8-sig")
    assert azure.azure_credentials_problem() is None


def test_mlflow_must_be_https_and_registry_an_acr(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("AZURE_CONTAINER_REGISTRY", "docker.io/me")
    decl = load_stack_decl("azure")
    assert azure.mlflow_problem(decl).startswith("MLflow tracking server: http://mlflow.internal:5000 is not an https")
    assert azure.container_registry_problem(decl).startswith("Container registry: docker.io/me is not an Azure")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    monkeypatch.setenv("AZURE_CONTAINER_REGISTRY", "heartml.azurecr.io")
    decl = load_stack_decl("azure")
    assert azure.mlflow_problem(decl) is None and azure.container_registry_problem(decl) is None


def test_a_ready_machine_has_no_problems(no_credentials, monkeypatch):
    for name, value in {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s",
                        "HEARTML_PARENT_IMAGE": "heartml.azurecr.io/heartml-base:1",
                        "MLFLOW_TRACKING_URI": "https://mlflow.example.org",
                        "AZURE_CONTAINER_REGISTRY": "heartml.azurecr.io"}.items():
        monkeypatch.setenv(name, value)
    assert azure.preflight_problems(load_stack_decl("azure"), "rest", "https://zenml.example.org") == []
