"""The team stack for real: `stack up team` starts the servers and accounts; the trainer trains, registers and
promotes through them; both servers refuse requests without a login (401); the reader may read but not register
or move an alias (403, and one line from run.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import psutil
import pytest
import requests
from mlflow.exceptions import MlflowException

from heartml.platform import team as team_service
from heartml.registry.model_versions import COMPLETE, STATUS_TAG
from tests.team.conftest import FAST_CONFIG, MODEL, versions_of

pytestmark = pytest.mark.slow


def test_stack_up_starts_each_server_once_and_keeps_credentials_private(team_stack):
    first = team_stack.up_output
    for service in team_service.SERVICES:
        assert f"{service}: started" in first, first
    running = team_service.status(team_stack.team)
    assert all(running.values()), running

    again = team_stack.run(None, "stack", "up", "team").stdout  # idempotent: nothing new starts
    for service, pid in running.items():
        assert f"{service}: running (pid {pid})" in again, again
    assert team_service.status(team_stack.team) == running

    home = team_stack.team.home
    for account in team_service.ACCOUNTS:
        mode = stat.S_IMODE(team_stack.team.account_file(account).stat().st_mode)
        assert mode == 0o600, (account, oct(mode))
    assert stat.S_IMODE((home / "secrets" / "servers.json").stat().st_mode) == 0o600
    # Data, logs, credentials: for this account only; the home itself only enterable (PostgreSQL runs as
    # `postgres` when root starts it) and not listable by others.
    folders = {path.name: stat.S_IMODE(path.stat().st_mode) for path in home.iterdir() if path.is_dir()}
    assert set(folders) >= {"secrets", "accounts", "logs", "state", "mariadb", "postgresql", "azurite", "zenml",
                            "mlflow"}
    assert set(folders.values()) == {0o700}, folders
    assert stat.S_IMODE(home.stat().st_mode) in (0o700, 0o711)
    # No password on any server's command line (what `ps` shows every user of the machine).
    secrets = json.loads((home / "secrets" / "servers.json").read_text()).values()
    for service, pid in running.items():
        for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            command_line = " ".join(process.cmdline())
            assert not [s for s in secrets if s in command_line], (service, process.pid)


def test_the_trainer_trains_registers_and_promotes_through_the_servers(team_stack, trained_on_team):
    summary = trained_on_team
    assert summary["status"] == "completed" and summary["stack"] == "team"
    assert summary["mlflow_tracking_uri"] == team_stack.team.mlflow_url
    assert summary["registered_model"]["version"] == "1"
    assert summary["promotion"]["production_version"] == "1"

    with team_stack.mlflow("reader") as client:  # the reader sees it all (later tests may have moved production)
        version = client.get_model_version(MODEL, "1")
        run = client.get_run(version.run_id)
        artifacts = [a.path for a in client.list_artifacts(version.run_id)]
    assert version.tags[STATUS_TAG] == COMPLETE
    assert run.info.user_id == "trainer"  # the MLflow run belongs to the account that trained
    assert "model_card" in artifacts

    # ZenML's artifacts and MLflow's both live in the team's Azurite.
    from azure.storage.blob import BlobServiceClient

    blobs = BlobServiceClient.from_connection_string(team_stack.team.azurite.connection_string)
    for container in ("zenml-artifacts", "mlflow-artifacts"):
        assert any(True for _ in blobs.get_container_client(container).list_blobs()), container

    # The ZenML server holds the run, created by the trainer's service account.
    admin = team_service.account_env(team_stack.team, "admin")
    session = requests.Session()
    token = session.post(f"{team_stack.team.zenml_url}/api/v1/login", timeout=30,
                         data={"username": "admin", "password": admin["ZENML_STORE_PASSWORD"]}).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    zenml_run = session.get(f"{team_stack.team.zenml_url}/api/v1/runs/{summary['run_id']}",
                            params={"hydrate": True}, timeout=30).json()
    assert zenml_run["body"]["status"] == "completed"
    assert zenml_run["resources"]["user"]["name"] == "trainer"


def test_zenml_stack_set_team_then_run_py_trains_on_the_team_stack(team_stack, trained_on_team):
    zenml = [sys.executable, "-c", "from zenml.cli.cli import cli; cli()"]
    subprocess.run([*zenml, "stack", "set", "team"], cwd=team_stack.workspace.project, env=team_stack.env("trainer"),
                   check=True, capture_output=True, timeout=300)
    summary = team_stack.base / "stack-set-summary.json"
    team_stack.run("trainer", "--config", FAST_CONFIG, "--summary-json", str(summary))  # no --stack
    facts = json.loads(summary.read_text())
    assert facts["stack"] == "team" and facts["status"] == "completed"
    assert facts["mlflow_tracking_uri"] == team_stack.team.mlflow_url


def test_both_servers_refuse_requests_without_a_login(team_stack):
    team = team_stack.team
    assert requests.get(f"{team.zenml_url}/api/v1/stacks", timeout=30).status_code == 401
    assert requests.get(f"{team.zenml_url}/api/v1/stacks", timeout=30,
                        headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    search = f"{team.mlflow_url}/api/2.0/mlflow/registered-models/search"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=("trainer", "wrong password"), timeout=30).status_code == 401

    # run.py with the servers' addresses and no login: one line each, exit 3.
    env = {"ZENML_STORE_URL": team.zenml_url, "MLFLOW_TRACKING_URI": team.mlflow_url}
    result = team_stack.run(None, "--stack", "team", "--config", FAST_CONFIG, check=False, **env)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "ZenML server" in errors[0] and "401" in errors[0], result.stderr
    assert "Traceback" not in result.stderr

    without_mlflow_login = team_stack.env("trainer")
    env = {k: without_mlflow_login[k] for k in ("ZENML_STORE_URL", "ZENML_STORE_API_KEY")}
    result = team_stack.run(None, "promote", "1", "--to", "staging", "--reason", "no MLflow login",
                            "--stack", "team", "--config", FAST_CONFIG, check=False, **env)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]


def test_the_reader_reads_but_cannot_register_or_move_an_alias(team_stack, trained_on_team):
    with team_stack.mlflow("trainer") as client:
        before = [(v.version, sorted(v.aliases)) for v in versions_of(client)]
        source_run = client.get_model_version(MODEL, "1").run_id
    with team_stack.mlflow("reader") as client:
        production = client.get_model_version_by_alias(MODEL, "production")  # reading is allowed
        assert production.tags[STATUS_TAG] == COMPLETE
        for attempt in (lambda: client.create_model_version(MODEL, f"runs:/{source_run}/model", run_id=source_run),
                        lambda: client.set_registered_model_alias(MODEL, "production", production.version),
                        lambda: client.delete_registered_model_alias(MODEL, "production")):
            with pytest.raises(MlflowException) as refused:
                attempt()
            assert refused.value.error_code == "PERMISSION_DENIED" and "403" in str(refused.value)

    promote = team_stack.run("reader", "promote", "1", "--to", "staging", "--reason", "reader tries",
                             "--stack", "team", "--config", FAST_CONFIG, check=False)
    train = team_stack.run("reader", "--stack", "team", "--config", FAST_CONFIG, check=False)
    for result, what in ((promote, "move the staging alias"), (train, "train and register versions")):
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-3000:]
        assert len(errors) == 1 and "'reader'" in errors[0] and what in errors[0] and "403" in errors[0], errors
    assert "Run " not in train.stdout  # stopped before any pipeline run

    with team_stack.mlflow("trainer") as client:  # nothing changed
        after = [(v.version, sorted(v.aliases)) for v in versions_of(client)]
    assert after == before


def test_account_settings_name_the_servers_and_no_secret_of_another_account(team_stack):
    trainer = team_service.account_env(team_stack.team, "trainer")
    reader = team_service.account_env(team_stack.team, "reader")
    assert trainer["ZENML_STORE_URL"] == team_stack.team.zenml_url == reader["ZENML_STORE_URL"]
    assert trainer["ZENML_STORE_API_KEY"] != reader["ZENML_STORE_API_KEY"]
    assert trainer["MLFLOW_TRACKING_PASSWORD"] != reader["MLFLOW_TRACKING_PASSWORD"]
    assert "ZENML_STORE_PASSWORD" not in trainer and "ZENML_STORE_PASSWORD" not in reader
    assert os.environ.get("MLFLOW_TRACKING_PASSWORD") != trainer["MLFLOW_TRACKING_PASSWORD"]
