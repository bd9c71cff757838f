"""Deploy the production model of the azure stack's MLflow registry as an Azure ML managed online endpoint, up
to the cloud boundary. Run by tests/azure/test_azureml_endpoint_contract.py in a throw-away copy of the project,
against a loopback ZenML server and a loopback MLflow server:  python -m tests.azure.deploy_online_endpoint OUT

Real: the stack registered from configs/stacks/azure.yaml, a model registered by the project's own code in the
MLflow server (production alias), configs/serving.yaml, run.py's `serve --stack azure` path after the stack checks,
the model files downloaded from the registry and azure-ai-ml building the endpoint and deployment, then the production
version registered in the workspace's model registry (what a promotion on the azure stack does). THE CLOUD BOUNDARY
is the three azure-ai-ml calls that would send them to Azure Resource Manager (uploading the model files to the
workspace's storage first): `OnlineEndpointOperations.begin_create_or_update`,
`OnlineDeploymentOperations.begin_create_or_update` and `ModelOperations.create_or_update`. Only those are
replaced; the socket guard of compile_azureml_job.py refuses and records anything beyond this machine.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

from tests.azure.compile_azureml_job import OUTBOUND, _guarded_connect, _guarded_getaddrinfo

MODEL = "heart_failure_classifier"


class Done:
    def __init__(self, value: Any):
        self.value = value

    def result(self) -> Any:
        return self.value


def install_cloud_boundary(captured: Dict[str, Any]) -> None:
    from azure.ai.ml.operations import ModelOperations, OnlineDeploymentOperations, OnlineEndpointOperations

    def create_endpoint(self: Any, endpoint: Any, **kwargs: Any) -> Done:  # cloud boundary: PUT the endpoint
        captured["endpoints"].append({"name": endpoint.name, "auth_mode": endpoint.auth_mode,
                                      "tags": dict(endpoint.tags or {}), "traffic": dict(endpoint.traffic or {}),
                                      "description": endpoint.description})
        # What Azure ML answers: the endpoint as sent, with its read-only scoring URI filled in.
        endpoint._scoring_uri = f"https://{endpoint.name}.westeurope.inference.ml.azure.com/score"
        return Done(endpoint)

    def create_deployment(self: Any, deployment: Any, **kwargs: Any) -> Done:  # cloud boundary: upload + PUT
        model = deployment.model
        captured["deployments"].append({
            "name": deployment.name, "endpoint_name": deployment.endpoint_name,
            "instance_type": deployment.instance_type, "instance_count": deployment.instance_count,
            "request_timeout_ms": deployment.request_settings.request_timeout_ms,
            "tags": dict(deployment.tags or {}), "environment": deployment.environment,
            "code_configuration": deployment.code_configuration,
            "model": {"type": model.type, "name": model.name, "version": model.version, "tags": dict(model.tags),
                      "files": sorted(str(p.relative_to(model.path)) for p in Path(model.path).rglob("*")
                                      if p.is_file())},
            "mlmodel": (Path(model.path) / "MLmodel").read_text(),
        })
        return Done(SimpleNamespace(name=deployment.name))

    def register_model(self: Any, model: Any, **kwargs: Any) -> Any:  # cloud boundary: upload + PUT the asset
        captured["workspace_models"].append({
            "type": model.type, "name": model.name, "version": model.version, "tags": dict(model.tags),
            "files": sorted(str(p.relative_to(model.path)) for p in Path(model.path).rglob("*") if p.is_file())})
        return model

    OnlineEndpointOperations.begin_create_or_update = create_endpoint
    OnlineDeploymentOperations.begin_create_or_update = create_deployment
    ModelOperations.create_or_update = register_model
    socket.socket.connect = _guarded_connect
    socket.getaddrinfo = _guarded_getaddrinfo


def register_production_model() -> str:
    """A logistic regression trained and registered by the project's own functions, promoted to production."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from heartml.core.dataset import load_dataset_spec
    from heartml.core.preprocessing import SplitOptions, clean_frame, features_and_target, split_frame
    from heartml.core.sources import read_source
    from heartml.core.versioning import row_hashes
    from heartml.registry.model_versions import mark_complete, register_model_version
    from tests.unit.conftest import fit_model

    spec = load_dataset_spec("configs/datasets/heart.yaml")
    train, test = split_frame(clean_frame(read_source("bundled://heart"), spec)[0], spec, SplitOptions())
    model = fit_model("logistic_regression", {}, train, spec)
    X_test, _ = features_and_target(test, spec)
    mlflow.set_experiment("endpoint-contract")
    with mlflow.start_run():
        registered = register_model_version(model, spec, X_test.head(5), MODEL, {}, 0.4,
                                            training_rows=row_hashes(train, spec.model_features))
    client = MlflowClient()
    mark_complete(client, MODEL, registered.version)
    client.set_registered_model_alias(MODEL, "production", registered.version)
    return registered.version


def main(output_dir: Path) -> None:
    import run
    from heartml.platform.declarations import load_stack_decl
    from heartml.platform.serving import load_serve_options
    from heartml.platform.stacks import ensure_secrets, ensure_stack
    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack

    run.ensure_repository()
    decl = load_stack_decl("azure")
    ensure_secrets(decl)
    ensure_stack(decl)
    configure_mlflow_from_active_stack()
    version = register_production_model()
    captured: Dict[str, Any] = {"endpoints": [], "deployments": [], "workspace_models": []}
    install_cloud_boundary(captured)
    options = load_serve_options(run.SERVING_CONFIG, "serving.yaml")
    run.serve_on_azure(options, decl)  # what `python run.py serve --stack azure` runs once the stack checks pass
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run.publish_to_azureml(client, MODEL, version)  # what `run.py promote V --to production` and the gate run next
    result = {"version": version, **captured, "outbound": OUTBOUND,
              "mlflow_tags": client.get_model_version(MODEL, version).tags}
    (output_dir / "endpoint.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
