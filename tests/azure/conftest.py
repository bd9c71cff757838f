"""Fixtures of the Azure tests: Azurite and a ZenML server (session-wide, started once), and a workspace whose
environment holds no Azure settings of the developer's shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict

import pytest

from tests.azurite import azurite  # noqa: F401  (session fixture)
from tests.conftest import Workspace
from tests.zenml_server import zenml_server  # noqa: F401  (session fixture)

# Settings a developer may have exported for a real Azure workspace; never let them leak into a test.
_AZURE_PREFIXES = ("AZURE_", "AZUREML_", "AZURITE_", "MLFLOW_", "HEARTML_", "DOCKER_HOST", "IDENTITY_ENDPOINT",
                   "MSI_ENDPOINT")


def clean_env(workspace: Workspace, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in workspace.env.items() if not k.startswith(_AZURE_PREFIXES)}
    env.update(extra)
    return env


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
