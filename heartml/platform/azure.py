"""Preflight of the `azure` stack: everything a run on Azure ML needs, checked on this machine, offline.

Each problem is one plain sentence saying what is missing and how to provide it. Nothing here calls Azure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlparse

from heartml.platform.declarations import StackDecl
from heartml.platform.serving import is_loopback

AZURE_GUIDE = 'docs/how-to/azure-ml.md, step 6'
PARENT_IMAGE_VARIABLE = "HEARTML_PARENT_IMAGE"


def zenml_server_problem(store_type: str, store_url: str) -> Optional[str]:
    """AzureML steps report to the ZenML server over the network: a local database or a loopback server won't do."""
    if store_type != "rest":
        return (f"ZenML server: this machine records runs in a local database ({store_url}); steps running on "
                "Azure ML must reach a ZenML server. Deploy one and connect with `zenml login https://<server>`.")
    host = urlparse(store_url).hostname or ""
    if is_loopback(host):
        return (f"ZenML server: {store_url} runs on this machine, where Azure ML cannot reach it. "
                "Connect to a deployed server with `zenml login https://<server>`.")
    return None


def docker_problem() -> Optional[str]:
    """Images are built with the local Docker daemon, unless a prebuilt parent image is named (skip-build route)."""
    if os.environ.get(PARENT_IMAGE_VARIABLE):
        return None
    import docker

    try:
        docker.from_env(timeout=5).ping()
        return None
    except Exception as error:  # docker raises DockerException, requests errors, FileNotFoundError...
        reason = str(error).split(":")[0] or type(error).__name__
    return (f"Docker or a parent image: no Docker daemon answers here ({reason}) and {PARENT_IMAGE_VARIABLE} is "
            f"not set. Start Docker, or set {PARENT_IMAGE_VARIABLE} to a prebuilt image that holds "
            f"requirements.txt ({AZURE_GUIDE}, without Docker).")


def azure_credentials_problem() -> Optional[str]:
    """The credential sources DefaultAzureCredential would use, looked for without a network call."""
    env = os.environ
    service_principal = env.get("AZURE_TENANT_ID") and env.get("AZURE_CLIENT_ID") and (
        env.get("AZURE_CLIENT_SECRET") or env.get("AZURE_CLIENT_CERTIFICATE_PATH"))
    workload_identity = env.get("AZURE_FEDERATED_TOKEN_FILE") and env.get("AZURE_CLIENT_ID")
    managed_identity = env.get("IDENTITY_ENDPOINT") or env.get("MSI_ENDPOINT")
    if service_principal or workload_identity or managed_identity or _azure_cli_logged_in():
        return None
    partial = [name for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET") if env.get(name)]
    hint = f" (only {', '.join(partial)} is set)" if partial else ""
    return ("Azure credentials: no service principal and no Azure CLI login found"
            f"{hint}. Run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.")


def _azure_cli_logged_in() -> bool:
    if not shutil.which("az"):
        return False
    profile = Path(os.environ.get("AZURE_CONFIG_DIR") or Path.home() / ".azure") / "azureProfile.json"
    try:
        return bool(json.loads(profile.read_text(encoding="utf-8-sig")).get("subscriptions"))
    except (OSError, ValueError):
        return False


def mlflow_problem(decl: StackDecl) -> Optional[str]:
    tracker = decl.component("experiment_tracker")
    uri = (tracker.configuration.get("tracking_uri") or "") if tracker else ""
    if uri and not uri.startswith("https://"):
        return (f"MLflow tracking server: {uri} is not an https URL; Azure ML must reach it and the token must not "
                "travel in clear text. Set MLFLOW_TRACKING_URI=https://<your-mlflow-server>.")
    return None


def container_registry_problem(decl: StackDecl) -> Optional[str]:
    registry = decl.component("container_registry")
    uri = (registry.configuration.get("uri") or "") if registry else ""
    if uri and not uri.split("/")[0].endswith(".azurecr.io"):
        return (f"Container registry: {uri} is not an Azure Container Registry login server; "
                "set AZURE_CONTAINER_REGISTRY=<name>.azurecr.io.")
    return None


def preflight_problems(decl: StackDecl, store_type: str, store_url: str) -> List[str]:
    """What the Azure ML stack lacks beyond its unset variables (those are reported by heartml.platform.stacks)."""
    checks = [zenml_server_problem(store_type, store_url), docker_problem(), azure_credentials_problem(),
              mlflow_problem(decl), container_registry_problem(decl)]
    return [problem for problem in checks if problem]
