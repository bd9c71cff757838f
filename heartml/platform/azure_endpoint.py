"""The Azure ML workspace of the azure stack: `python run.py serve --stack azure` makes the served version a managed
online endpoint, and a version promoted to production is also registered in the workspace's model registry.

A no-code MLflow deployment: the registered MLflow model's own files (MLmodel, requirements, the record guard and
the core it ships) are the deployment's model asset, so Azure ML's MLflow scoring server refuses impossible patients
as `mlflow models serve` does here. Endpoint, deployment and traffic are created or updated in that order with
azure-ai-ml (SDK v2) against the workspace of the stack's AzureML orchestrator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from heartml.platform.declarations import StackDecl
from heartml.registry.serving import ServingModel
from heartml.serving.options import AzureEndpointOptions


def workspace_from(orchestrator_configuration: Dict[str, Any]) -> Dict[str, str]:
    """subscription_id, resource_group and workspace of an AzureML orchestrator's configuration."""
    return {key: str(orchestrator_configuration[key]) for key in ("subscription_id", "resource_group", "workspace")}


def workspace_of(decl: StackDecl) -> Dict[str, str]:
    """The workspace of the stack's AzureML orchestrator (from its declaration)."""
    orchestrator = decl.component("orchestrator")
    if orchestrator is None or orchestrator.flavor != "azureml":
        raise ValueError(f"stack {decl.name!r} has no AzureML orchestrator")
    return workspace_from(orchestrator.configuration)


def endpoint_and_deployment(options: AzureEndpointOptions, serving: ServingModel, model_files: Path) -> Tuple[Any, Any]:
    """The ManagedOnlineEndpoint and its ManagedOnlineDeployment of `serving` (model files in `model_files`)."""
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, OnlineRequestSettings

    tags = {"mlflow_model": serving.name, "mlflow_version": serving.version, "alias": serving.alias,
            "decision_threshold": str(serving.decision_threshold)}
    endpoint = ManagedOnlineEndpoint(
        name=options.endpoint_name, auth_mode=options.auth_mode, tags=tags,
        description=f"{serving.name} ({serving.alias}): P(positive) per patient; the class is probability >= "
                    f"{serving.decision_threshold:g}")
    model = workspace_model(serving.name, serving.version, tags, model_files,
                            f"MLflow model {serving.name} version {serving.version} ({serving.uri})")
    deployment = ManagedOnlineDeployment(
        name=options.deployment_name, endpoint_name=options.endpoint_name, model=model, tags=tags,
        instance_type=options.instance_type, instance_count=options.instance_count,
        request_settings=OnlineRequestSettings(
            request_timeout_ms=options.request_timeout_ms,
            max_concurrent_requests_per_instance=options.max_concurrent_requests_per_instance))
    return endpoint, deployment


def deploy_online(decl: StackDecl, options: AzureEndpointOptions, serving: ServingModel,
                  model_files: Path) -> Dict[str, Any]:
    """Create or update the endpoint, its deployment, then send it all traffic; what Azure ML answered."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    where = workspace_of(decl)
    client = MLClient(DefaultAzureCredential(), where["subscription_id"], where["resource_group"],
                      where["workspace"])
    endpoint, deployment = endpoint_and_deployment(options, serving, model_files)
    created = client.online_endpoints.begin_create_or_update(endpoint).result()
    client.online_deployments.begin_create_or_update(deployment).result()
    created.traffic = {options.deployment_name: 100}
    created = client.online_endpoints.begin_create_or_update(created).result()
    return {"endpoint": options.endpoint_name, "deployment": options.deployment_name,
            "scoring_uri": getattr(created, "scoring_uri", None), "traffic": dict(created.traffic or {}),
            "workspace": where["workspace"]}


def workspace_model(name: str, version: str, tags: Dict[str, str], model_files: Path, description: str) -> Any:
    """The Azure ML model asset of an MLflow model version: MLflow type, same name and version, `tags`."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    return Model(path=str(model_files), type=AssetTypes.MLFLOW_MODEL, name=name, version=version, tags=tags,
                 description=description)


def register_in_workspace(where: Dict[str, str], mlflow_client: Any, name: str, version: str) -> Dict[str, Any]:
    """Register a promoted MLflow version in the Azure ML workspace's model registry beside MLflow: its own files,
    its registry tags (plus alias `production`). Returns what Azure ML answered."""
    import tempfile

    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    from heartml.registry.model_versions import PRODUCTION, download_model_files

    found = mlflow_client.get_model_version(name, version)
    tags = {**found.tags, "mlflow_model": name, "mlflow_version": str(version), "alias": PRODUCTION}
    client = MLClient(DefaultAzureCredential(), where["subscription_id"], where["resource_group"], where["workspace"])
    with tempfile.TemporaryDirectory(prefix="heartml-workspace-model-") as folder:
        files = download_model_files(f"models:/{name}/{version}", Path(folder))
        created = client.models.create_or_update(workspace_model(
            name, str(version), tags, files, f"MLflow model {name} version {version}, promoted to production"))
    return {"name": created.name, "version": created.version, "workspace": where["workspace"]}
