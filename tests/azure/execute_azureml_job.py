"""Execute the Azure ML pipeline job that ZenML's AzureML orchestrator compiles, step by step, against the team stack.

Run by tests/team/test_azureml_job_executed.py in a throw-away copy of the project, as the team's `trainer`, with the
azure stack's settings pointing at the team's servers:  python -m tests.azure.execute_azureml_job CONFIG OUTPUT_DIR

1. The azure stack is registered on the team's ZenML server from configs/stacks/azure.yaml, its artifact store on the
   team's Azurite and its MLflow tracker on the team's MLflow server. One change: that server takes basic-auth
   logins, not a bearer token, so the tracker's credential is the account's private secret `team_mlflow`, as on
   the team stack.
2. The training pipeline is compiled and submitted as in tests/azure/compile_azureml_job.py: THE CLOUD BOUNDARY is
   `JobOperations.create_or_update` and `ComputeOperations.get`, which capture the PipelineJob.
3. Each node of that job runs in its dependency order (the `${{parent.jobs.X.outputs.completed}}` inputs), as
   Azure ML would run it in a container: the node's own command line (ZenML's entrypoint with the snapshot, the step
   and ZenML's environment), in an empty folder of its own that stands for the container's /app (the code comes
   from the artifact store, as the prebuilt image route says, and is unpacked there), with the environment Azure ML
   gives every container of a pipeline job (AZUREML_ROOT_RUN_ID shared by the steps, its own AZUREML_RUN_ID, the
   workspace's MLflow URI and an MLFLOW_RUN_ID, the output and input paths) and the image's
   (docker/heartml-base.Dockerfile: the offline settings, matplotlib's font cache, built here once as the image
   build does). As on Azure ML, a node starts as soon as the nodes it depends on have completed, so the evaluation
   and LIME run at once. Missing: the container image (this machine's Python environment stands in for it) and the
   compute cluster (the steps run here, as processes of this machine). No credential of this process reaches the
   steps: ZenML's environment in the command line carries the run's API token, and the rest comes from ZenML
   secrets.
In each step's process, tests/azure/step_boundary/sitecustomize.py keeps the socket guard and replaces the two calls
that would leave the machine: `JobOperations.get` (ZenML reads the job's Studio URL) and the Azure ML model
registry's `ModelOperations.create_or_update` (a promotion on the azure stack registers the version there).
"""

from __future__ import annotations

import graphlib
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import yaml

from tests.azure.compile_azureml_job import OUTBOUND, describe, install_cloud_boundary

BOUNDARY = Path(__file__).parent / "step_boundary"


def register_azure_stack() -> List[str]:
    from heartml.platform.declarations import load_stack_decl
    from heartml.platform.stacks import ensure_secrets, ensure_stack

    decl = load_stack_decl("azure")
    team = load_stack_decl("team")
    tracker = decl.components["experiment_tracker"]
    configuration = {k: v for k, v in tracker.configuration.items() if k != "tracking_token"}
    configuration.update(tracking_username="{{team_mlflow.username}}", tracking_password="{{team_mlflow.password}}")
    decl = decl.model_copy(update={
        "components": {**decl.components,
                       "experiment_tracker": tracker.model_copy(update={"configuration": configuration})},
        "secrets": {"azure_storage": decl.secrets["azure_storage"], "team_mlflow": team.secrets["team_mlflow"]},
        "private_secrets": ["team_mlflow"]})
    return ensure_secrets(decl) + ensure_stack(decl)


def compile_job(config_file: Path, job_name: str) -> Any:
    import run
    from heartml.platform.declarations import load_stack_decl, run_settings
    from pipelines.training import training_pipeline

    config_path = run.effective_config(config_file, {}, no_cache=True,
                                       stack_defaults=run_settings(load_stack_decl("azure")))
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("settings", {})["orchestrator"] = {"synchronous": False}  # the steps run below
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    captured: Dict[str, Any] = {"jobs": [], "compute_lookups": []}
    install_cloud_boundary(captured, job_name=job_name)
    response = training_pipeline.with_options(config_path=str(config_path))()
    return response.id, captured["jobs"][0]


def build_image_caches(outputs: Path) -> Path:
    """What the image build leaves in the image besides the packages: matplotlib's font cache (MPLCONFIGDIR)."""
    cache = outputs / "image" / "matplotlib"
    cache.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], check=True, timeout=300,
                   env={"PATH": os.environ["PATH"], "MPLCONFIGDIR": str(cache)})
    return cache


def container_env(node: Any, job_name: str, upstream: List[str], outputs: Path, app: Path,
                  image_cache: Path) -> Dict[str, str]:
    """What a container of this node gets: the image's settings (`image_cache`: its matplotlib cache) and what Azure ML
    sets for a pipeline step; `app` stands for the container's own /app."""
    workspace = {k: os.environ[v] for k, v in (("sub", "AZURE_SUBSCRIPTION_ID"), ("rg", "AZURE_RESOURCE_GROUP"),
                                               ("ws", "AZUREML_WORKSPACE"))}
    step = node.component.name
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",  # the image's Python
        "HOME": str(outputs / "home" / step), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        "MPLCONFIGDIR": str(image_cache),
        "ZENML_ANALYTICS_OPT_IN": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
        "AZUREML_ROOT_RUN_ID": job_name, "AZUREML_RUN_ID": f"{job_name}_{step}",
        "AZUREML_ARM_SUBSCRIPTION": workspace["sub"], "AZUREML_ARM_RESOURCEGROUP": workspace["rg"],
        "AZUREML_ARM_WORKSPACE_NAME": workspace["ws"],
        "MLFLOW_TRACKING_URI": f"azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/{workspace['sub']}"
                               f"/resourceGroups/{workspace['rg']}/providers/Microsoft.MachineLearningServices"
                               f"/workspaces/{workspace['ws']}",
        "MLFLOW_RUN_ID": uuid.uuid4().hex,  # Azure ML's own run of the node (ZenML issue #5122)
        "AZURE_ML_OUTPUT_COMPLETED": str(outputs / "outputs" / step / "completed"),
        **{f"AZURE_ML_INPUT_{name}": str(outputs / "outputs" / name / "completed") for name in upstream},
        # The cloud boundary inside the step's process (tests/azure/step_boundary/sitecustomize.py).
        "PYTHONPATH": str(BOUNDARY), "HEARTML_STEP_BOUNDARY_LOG": str(outputs / "boundary.jsonl"),
        "HEARTML_CONTAINER_APP": str(app),
    }


def execute(job: Any, job_name: str, outputs: Path) -> List[Dict[str, Any]]:
    """Every node of `job`, each started once the nodes it depends on completed (as Azure ML schedules them); the
    nodes in the order they started, with their start and end (seconds since the first start)."""
    nodes = {node.component.name: node for node in job.jobs.values()}
    dependencies = {name: set((node.inputs or {}).keys()) for name, node in nodes.items()}
    image_cache = build_image_caches(outputs)
    order = graphlib.TopologicalSorter(dependencies)
    order.prepare()
    running: Dict[str, Any] = {}
    executed: List[Dict[str, Any]] = []
    first = time.monotonic()
    failed = False
    while order.is_active():
        for name in ([] if failed else order.get_ready()):
            work = outputs / "containers" / name  # empty, as a fresh container's /app
            work.mkdir(parents=True)
            (outputs / "home" / name).mkdir(parents=True)
            log = (outputs / f"{name}.log").open("w")
            process = subprocess.Popen(shlex.split(nodes[name].component.command), cwd=work, stdout=log,
                                       stderr=subprocess.STDOUT,
                                       env=container_env(nodes[name], job_name, sorted(dependencies[name]), outputs,
                                                         work, image_cache))
            entry = {"step": name, "upstream": sorted(dependencies[name]),
                     "started": round(time.monotonic() - first, 1)}
            executed.append(entry)
            running[name] = (process, log, entry)
        if not running:
            break  # a node failed: Azure ML starts none of the nodes that depend on it
        time.sleep(0.2)
        for name, (process, log, entry) in list(running.items()):
            if process.poll() is None:
                if time.monotonic() - first > 1800:
                    process.kill()
                continue
            log.close()
            del running[name]
            completed = outputs / "outputs" / name / "completed"
            entry.update(returncode=process.returncode, ended=round(time.monotonic() - first, 1),
                         completed_output=completed.exists())
            if process.returncode == 0:
                order.done(name)
            else:
                failed = True
    return executed


def main(config_file: Path, output_dir: Path) -> None:
    import run

    run.ensure_repository()
    job_name = f"heartml-job-{uuid.uuid4().hex[:12]}"
    changes = register_azure_stack()
    run_id, job = compile_job(config_file, job_name)
    described = describe(job)
    command_env = {name: sorted(node["env"]) for name, node in described["nodes"].items()}
    executed = execute(job, job_name, output_dir)

    from zenml.client import Client

    pipeline_run = Client().get_pipeline_run(run_id)
    boundary = output_dir / "boundary.jsonl"
    result = {
        "stack_changes": changes, "job_name": job_name, "run_id": str(run_id),
        "run_status": str(pipeline_run.status.value),
        "orchestrator_run_id": pipeline_run.orchestrator_run_id,
        "steps_in_zenml": {name: str(step.status.value) for name, step in pipeline_run.steps.items()},
        "executed": executed, "step_env_keys": command_env, "nodes": sorted(described["nodes"]),
        "compile_outbound": OUTBOUND,
        "boundary": [json.loads(line) for line in boundary.read_text().splitlines()] if boundary.exists() else [],
    }
    (output_dir / "executed.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
