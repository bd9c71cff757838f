"""Run the heart-disease training pipeline on a ZenML stack.

\b
Examples:
  python run.py --stack local                 # register + activate the local stack, train, register a model
  python run.py                               # train on the active stack (after `zenml stack set NAME`)
  python run.py --no-cache --summary-json out/summary.json
  python run.py --config configs/training.yaml --source data/heart.csv
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

# Quiet, offline defaults; an explicit setting in the environment wins.
for _name, _value in {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}.items():
    os.environ.setdefault(_name, _value)

import click
import yaml

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "training.yaml"


def ensure_repository() -> None:
    """A ZenML repository at the project root, so step sources resolve the same from any working directory."""
    from zenml.client import Client

    if not (ROOT / ".zen").is_dir():
        Client.initialize(root=ROOT)
    os.chdir(ROOT)


def effective_config(config_path: Path, overrides: Dict[str, Any], no_cache: bool) -> Path:
    """The YAML run config with command-line overrides applied, written next to nothing the user owns."""
    with config_path.open(encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    parameters = config.setdefault("parameters", {})
    parameters.update({k: v for k, v in overrides.items() if v is not None})
    if no_cache:
        config["enable_cache"] = False
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="run-config-", delete=False)
    with handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return Path(handle.name)


def summarize(run: Any, stack_name: str) -> Dict[str, Any]:
    """The facts a user wants after a run, read back from the run's artifacts."""
    steps = run.steps
    metrics = steps["model_evaluation"].outputs["test_metrics"][0].load()
    registered = steps["register_model"].outputs["registered_model"][0].load()
    return {
        "run_name": run.name,
        "run_id": str(run.id),
        "status": str(run.status.value),
        "stack": stack_name,
        "test_metrics": metrics,
        "registered_model": {"name": registered.name, "version": registered.version, "uri": registered.model_uri},
        "mlflow_tracking_uri": registered.tracking_uri,
    }


def print_summary(summary: Dict[str, Any]) -> None:
    metrics = summary["test_metrics"]
    model = summary["registered_model"]
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    click.echo("Test metrics: " + "  ".join(f"{k}={metrics[k]:.3f}" for k in
                                            ("roc_auc", "accuracy", "precision", "recall", "f1") if k in metrics))
    click.echo(f"Registered model: {model['name']} version {model['version']} ({model['uri']})")
    click.echo(f"ZenML dashboard:  python run.py --dashboard   then open http://127.0.0.1:8237/projects/default/runs/{summary['run_id']}")
    click.echo(f"MLflow UI:        mlflow ui --backend-store-uri '{summary['mlflow_tracking_uri']}' --port 5000")


@click.command(help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stack", "stack_name", help="Register (idempotently) and activate configs/stacks/NAME.yaml first.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG, show_default=True, help="ZenML run configuration of the training pipeline.")
@click.option("--source", help="Data source URI; overrides the dataset's default (bundled://heart, a file path, ...).")
@click.option("--dataset", "dataset_config", type=click.Path(exists=True, dir_okay=False),
              help="Dataset description under configs/datasets/.")
@click.option("--no-cache", is_flag=True, help="Run every step even if a cached result exists.")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Write run name, stack, test metrics and the registered model version to this file.")
@click.option("--dashboard", is_flag=True,
              help="Start the local ZenML dashboard and the MLflow UI on 127.0.0.1, print both URLs, and exit.")
@click.option("--dashboard-stop", is_flag=True, help="Stop what --dashboard started; the CLI keeps working locally.")
@click.option("--dashboard-ports", type=(int, int), default=(8237, 5000), show_default=True,
              metavar="ZENML MLFLOW", help="Loopback ports of the ZenML dashboard and the MLflow UI.")
def main(stack_name: Optional[str], config_path: Path, source: Optional[str], dataset_config: Optional[str],
         no_cache: bool, summary_json: Optional[Path], dashboard: bool, dashboard_stop: bool,
         dashboard_ports: tuple) -> None:
    from heartml.errors import InputError

    if dashboard or dashboard_stop:
        manage_dashboard(stack_name, start=dashboard, ports=dashboard_ports)
        return

    config_path = config_path.resolve()
    if summary_json:
        summary_json = summary_json.resolve()
    try:
        summary = train(stack_name, config_path, {"source": source, "dataset_config": dataset_config}, no_cache)
    except InputError as error:
        for line in error.lines:
            click.secho(f"error: {line}", fg="red", err=True)
        sys.exit(error.exit_code)
    print_summary(summary)
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2))


def manage_dashboard(stack_name: Optional[str], start: bool, ports: tuple) -> None:
    from heartml import dashboard

    if not start:
        stopped = dashboard.stop()
        click.echo("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return
    ensure_repository()
    from zenml.client import Client

    from heartml.stacks import ensure_stack, load_stack_decl

    if stack_name:
        ensure_stack(load_stack_decl(stack_name))
    tracker = Client().active_stack.experiment_tracker
    tracking_uri = tracker.get_tracking_uri() if tracker else None
    if tracking_uri is None or tracking_uri.startswith(("http://", "https://")):
        click.echo(f"ZenML dashboard: {dashboard.start_zenml(ports[0])}")
        click.echo(f"MLflow:          {tracking_uri or 'no experiment tracker in the active stack'}")
        return
    state = dashboard.start(tracking_uri, zenml_port=ports[0], mlflow_port=ports[1])
    click.echo(f"ZenML dashboard: {state.zenml_url}  (runs: {state.zenml_url}/projects/default/runs)")
    click.echo(f"MLflow UI:       {state.mlflow_url}  (models: {state.mlflow_url}/#/models)")
    click.echo("Stop both with:  python run.py --dashboard-stop")


def train(stack_name: Optional[str], config_path: Path, overrides: Dict[str, Any], no_cache: bool) -> Dict[str, Any]:
    ensure_repository()
    from zenml.client import Client

    from heartml.stacks import ensure_stack, load_stack_decl
    from pipelines.training import training_pipeline

    if stack_name:
        for change in ensure_stack(load_stack_decl(stack_name)):
            click.echo(change)
    active = Client().active_stack_model.name
    run_config = effective_config(config_path, overrides, no_cache)
    try:
        preflight_data(run_config)
        run = training_pipeline.with_options(config_path=str(run_config))()
    finally:
        run_config.unlink(missing_ok=True)
    return summarize(Client().get_pipeline_run(run.id), active)


def preflight_data(run_config: Path) -> None:
    """Read and validate the source before submitting, so bad data fails in one clear line and no run starts.

    The ingestion step validates again wherever it runs (remote orchestrators included).
    """
    from heartml.dataset import load_dataset_spec
    from heartml.sources import read_source
    from heartml.validation import validate_frame

    parameters = yaml.safe_load(run_config.read_text()).get("parameters", {})
    spec = load_dataset_spec(parameters.get("dataset_config") or "configs/datasets/heart.yaml")
    uri = parameters.get("source") or spec.default_source
    validate_frame(read_source(uri, spec.read_options), spec, uri)


if __name__ == "__main__":
    main()
