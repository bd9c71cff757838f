"""No credential of the team stack anywhere it should not be, after every other team test ran (training, refusals,
faults, load). Searched for: every server credential `stack up` generated (database passwords, the admin password,
the trainer's and reader's MLflow passwords, the JWT, encryption and Flask keys), both service accounts' ZenML API
keys, and Azurite's account key. Searched in: every output of run.py in this session, every file of the workspace
and of the accounts' ZenML client folders, every file the servers keep (logs, configuration, the MariaDB and
PostgreSQL data folders, Azurite's data on disk), every blob in the team's Azurite, every MLflow param and tag, and the
stack components' configuration on the ZenML server.

Where credentials belong, and so are left out: `<home>/secrets/servers.json` and `<home>/accounts/*.env` (0600, what
`stack up` hands to the servers and the accounts), each account's ZenML client credential cache
(`credentials.yaml`, ZenML's own place for its login), and heartml/platform/azurite.py, which defines Azurite's
published development key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
import requests

from heartml.platform import azurite as azurite_service
from heartml.platform import team as team_service
from tests.secrets_scan import blobs, files, forms, mlflow_values

pytestmark = pytest.mark.slow


def _raw_files(folder: Path, skip: Tuple[Path, ...]) -> Iterator[Tuple[str, bytes]]:
    """Bytes as stored (database pages, logs): no unpacking of what merely looks like an archive."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and not any(path.is_relative_to(s) for s in skip):
            yield str(path), path.read_bytes()


def _needles(team: team_service.Team) -> Dict[str, str]:
    found = {f"server credential {name}": value for name, value in team_service.server_secrets(team).items()}
    for account in ("trainer", "reader"):
        found[f"{account}'s ZenML API key"] = team_service.account_env(team, account)["ZENML_STORE_API_KEY"]
    found["Azurite's account key"] = azurite_service.ACCOUNT_KEY
    return found


def _legitimate(name: str, where: str) -> bool:
    if where.endswith("credentials.yaml") and "zenml-client-" in where:
        return True  # the account's own ZenML login cache
    return name == "Azurite's account key" and where.replace("\\", "/").endswith("heartml/platform/azurite.py")


def _component_configurations(team: team_service.Team) -> Iterator[Tuple[str, bytes]]:
    admin = team_service.account_env(team, "admin")
    session = requests.Session()
    token = session.post(f"{team.zenml_url}/api/v1/login", timeout=30,
                         data={"username": "admin", "password": admin["ZENML_STORE_PASSWORD"]}).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    page = session.get(f"{team.zenml_url}/api/v1/components", params={"hydrate": True, "size": 100},
                       timeout=30).json()
    for component in page["items"]:
        yield f"ZenML component {component['name']}", json.dumps(component).encode()


def test_no_team_credential_in_outputs_files_blobs_mlflow_or_components(team_stack, trained_on_team):
    team = team_stack.team
    needles = _needles(team)
    tracker_reference = None
    with team_stack.mlflow("admin") as client:
        haystacks = [
            *((f"output of {where}", text.encode()) for where, text in
              {"stack up team": team_stack.up_output, **team_stack.outputs}.items()),
            *files(team_stack.workspace.project),
            *(item for folder in team_stack.base.glob("zenml-client-*") for item in files(folder)),
            *_raw_files(team.home, skip=(team.home / "secrets", team.home / "accounts")),
            *blobs(team.azurite),
            *mlflow_values(client),
            *_component_configurations(team),
        ]
    searched = {"run.py outputs": 0, "server logs": 0, "database files": 0, "blobs": 0, "MLflow tags": 0,
                "components": 0}
    found = []
    for where, content in haystacks:
        searched["run.py outputs"] += where.startswith("output of")
        searched["server logs"] += where.endswith(".log")
        searched["database files"] += "/mariadb/data/" in where or "/postgresql/data/" in where
        searched["blobs"] += where.startswith("az://")
        searched["MLflow tags"] += " tag " in where
        searched["components"] += where.startswith("ZenML component")
        if where == "ZenML component team_mlflow_tracker":
            tracker_reference = json.loads(content)["metadata"]["configuration"]
        for name, value in needles.items():
            if any(form in content for form in forms(value)) and not _legitimate(name, where):
                found.append(f"{name} in {where}")
    assert found == []
    assert all(searched.values()), searched  # the search reached every kind of place
    # The tracker names each account's private secret; the values live only in ZenML's secrets store.
    assert tracker_reference["tracking_password"] == "{{team_mlflow.password}}"
    assert tracker_reference["tracking_username"] == "{{team_mlflow.username}}"
