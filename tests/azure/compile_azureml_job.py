"""Compile the real training pipeline on the real `azure` stack declaration into an Azure ML pipeline job.

Run by tests/azure/test_azureml_contract.py in a throw-away copy of the project, against a loopback ZenML server
and Azurite:  python -m tests.azure.compile_azureml_job OUTPUT_DIR

Everything runs for real up to the cloud boundary: stack registration from configs/stacks/azure.yaml and
configs/docker.yaml, the snapshot on the ZenML server, the code upload to the artifact store (Azurite), ZenML's
AzureML orchestrator building the azure-ai-ml PipelineJob. THE CLOUD BOUNDARY is the two azure-ai-ml calls that
would send HTTPS requests to Azure Resource Manager: `JobOperations.create_or_update` (submits the job) and
`ComputeOperations.get` (looks up the compute cluster). Only those are replaced; they record what they receive.
A socket guard refuses, and records, every connection that is not to this machine.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List
from urllib.parse import urlparse

import yaml

OUTBOUND: List[str] = []
MLFLOW_CONNECTIONS: List[str] = []
MLFLOW_PORT = urlparse(os.environ.get("MLFLOW_TRACKING_URI", "")).port
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _is_local(host: Any) -> bool:
    if not isinstance(host, str):  # AF_UNIX paths
        return True
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(sock: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(address, tuple) and MLFLOW_PORT and address[1] == MLFLOW_PORT:
        MLFLOW_CONNECTIONS.append(f"connect {address}")
    if not _is_local(host):
        OUTBOUND.append(f"connect {address}")
        raise ConnectionRefusedError(f"contract test: no network beyond loopback ({address})")
    return _connect(sock, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_local(host.decode() if isinstance(host, bytes) else host):
        OUTBOUND.append(f"dns {host}")
        raise socket.gaierror(socket.EAI_NONAME, f"contract test: no DNS beyond loopback ({host})")
    return _getaddrinfo(host, *args, **kwargs)


def install_cloud_boundary(captured: Dict[str, Any], job_name: str = "contract-azureml-job") -> None:
    from azure.ai.ml.entities import AmlCompute
    from azure.ai.ml.operations import ComputeOperations, JobOperations

    studio = f"https://ml.azure.com/runs/{job_name}"  # what Azure ML answers: the job's name and studio page
    stub = SimpleNamespace(name=job_name, status="NotStarted", studio_url=studio,
                           services={"Studio": SimpleNamespace(endpoint=studio)})

    def submit(self: Any, job: Any, **kwargs: Any) -> Any:  # cloud boundary: would PUT the job to Azure ML
        captured["jobs"].append(job)
        return stub

    def get_compute(self: Any, name: str) -> Any:  # cloud boundary: would GET the cluster from Azure ML
        captured["compute_lookups"].append(name)
        return AmlCompute(name=name, size="Standard_DS3_v2", min_instances=0, max_instances=2,
                          provisioning_state="Succeeded")

    JobOperations.create_or_update = submit
    ComputeOperations.get = get_compute
    socket.socket.connect = _guarded_connect
    socket.getaddrinfo = _guarded_getaddrinfo


def describe(job: Any) -> Dict[str, Any]:
    """The parts of the PipelineJob the contract is about, keyed by step (= component) name."""
    nodes = {}
    for node in job.jobs.values():
        component = node.component
        command = shlex.split(component.command)
        arguments = dict(zip(command[3::2], command[4::2]))
        env = json.loads(base64.b64decode(arguments.pop("--zenml_env_variables")))
        nodes[component.name] = {
            "node_type": type(node).__name__,
            "display_name": component.display_name,
            "program": command[:3],
            "arguments": arguments,
            "env": env,
            "image": component.environment.image,
            "environment_name": component.environment.name,
            "compute": node.compute,
            "inputs": {name: str(getattr(value, "_data", value)) for name, value in (node.inputs or {}).items()},
            "outputs": sorted(component.outputs),
        }
    return {
        "class": f"{type(job).__module__}.{type(job).__name__}",
        "type": job.type,
        "display_name": job.display_name,
        "compute": job.compute,
        "default_compute": job.settings.default_compute,
        "force_rerun": job.settings.force_rerun,
        "nodes": nodes,
    }


def main(output_dir: Path) -> None:
    import run
    from heartml.platform.declarations import load_stack_decl, run_settings
    from heartml.platform.stacks import ensure_secrets, ensure_stack

    run.ensure_repository()
    decl = load_stack_decl("azure")
    changes = ensure_secrets(decl) + ensure_stack(decl)
    config_path = run.effective_config(run.ROOT / "tests" / "configs" / "training-fast.yaml", {}, no_cache=True,
                                       stack_defaults=run_settings(decl))
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("settings", {})["orchestrator"] = {"synchronous": False}  # nothing to wait for here
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    captured: Dict[str, Any] = {"jobs": [], "compute_lookups": []}
    install_cloud_boundary(captured)
    from zenml.client import Client

    from pipelines.training import training_pipeline

    response = training_pipeline.with_options(config_path=str(config_path))()
    client = Client()
    pipeline_run = client.get_pipeline_run(response.id)
    snapshot = pipeline_run.snapshot
    job = captured["jobs"][0] if captured["jobs"] else None
    if job is not None:
        job.dump(output_dir / "azureml_pipeline_job.yaml")
    result = {
        "stack_changes": changes,
        "store_url": client.zen_store.url,
        "run_id": str(pipeline_run.id),
        "run_status": str(pipeline_run.status.value),
        "run_metadata": {k: str(v) for k, v in pipeline_run.run_metadata.items()},
        "snapshot_id": str(snapshot.id),
        "snapshot_steps": {name: {"upstream": sorted(step.spec.upstream_steps),
                                  "step_operator": step.config.step_operator}
                           for name, step in snapshot.step_configurations.items()},
        "stack_id": str(client.active_stack_model.id),
        "project_id": str(client.active_project.id),
        "docker": snapshot.pipeline_configuration.docker_settings.model_dump(mode="json", exclude_unset=True),
        "code_path": snapshot.code_path,
        "submitted_jobs": len(captured["jobs"]),
        "compute_lookups": captured["compute_lookups"],
        "outbound": OUTBOUND,
        "mlflow_connections": MLFLOW_CONNECTIONS,
        "job": describe(job) if job is not None else None,
    }
    (output_dir / "contract.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
