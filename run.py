"""Run the heart-disease training pipeline on a ZenML stack, promote a model version, or score a batch.

\b
Examples:
  python run.py --stack local                 # register + activate the local stack, train, register, promote
  python run.py --stack azurite               # artifacts in Azure Blob Storage (Azurite, started if needed)
  python run.py --stack azure                 # Azure ML; says first what is missing (README: Run on Azure ML)
  python run.py                               # train on the active stack (after `zenml stack set NAME`)
  python run.py --no-cache --summary-json out/summary.json
  python run.py --source data/heart.csv       # a local CSV or Parquet file with the default schema
  python run.py --source 'sqlite:///heart.db#table=heart'
  python run.py --dataset configs/datasets/heart_failure_records.yaml
  python run.py --promote 3 --to production --reason "reviewed by cardiology, ticket 42"
  python run.py --inference --input patients.csv --output predictions.parquet
  python run.py --inference --input patients.csv --output sqlite:///predictions.db
  python run.py --dashboard                   # ZenML dashboard + MLflow UI on 127.0.0.1 (--dashboard-stop)
  python run.py --verbose                     # ZenML's and MLflow's full console logs (default: progress + summary)

\b
Sources (--source URI, or default_source in the dataset description):
  bundled://heart, bundled://heart_failure_records   files shipped in a pinned package, sha256-verified
  PATH, file://PATH                                  CSV or Parquet (optional #sha256=HEX pin)
  https://host/heart.csv#sha256=HEX                  downloaded once into $HEARTML_DATA_CACHE
  sqlite:///heart.db#table=T, postgresql://.../db#query=SELECT ...   any SQLAlchemy URL
  az://container/path.csv                            Azure Blob via adlfs (AZURE_STORAGE_CONNECTION_STRING)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

# Quiet, offline defaults; an explicit setting in the environment wins.
for _name, _value in {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # MLflow draws a progress bar for every artifact copy, even local sub-second ones, into the step logs too.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}.items():
    os.environ.setdefault(_name, _value)

import click
import yaml

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "training.yaml"
INFERENCE_CONFIG = ROOT / "configs" / "inference.yaml"
STARTED_RUN: Optional[str] = None  # the pipeline run this process started, for the line after an interruption


def ensure_repository() -> None:
    """A ZenML repository at the project root, so step sources resolve the same from any working directory."""
    from zenml.client import Client

    if not (ROOT / ".zen").is_dir():
        Client.initialize(root=ROOT)
    os.chdir(ROOT)


def load_config(config_path: Path) -> Dict[str, Any]:
    with config_path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def effective_config(config_path: Path, overrides: Dict[str, Any], no_cache: bool,
                     step_overrides: Optional[Dict[str, Dict[str, Any]]] = None,
                     stack_defaults: Optional[Dict[str, Any]] = None) -> Path:
    """The YAML run config with command-line overrides applied, written next to nothing the user owns.

    `stack_defaults` (Docker settings, step operators of the stack) fill in what the file does not say.
    """
    from heartml.platform.stacks import merge_defaults

    config = merge_defaults(load_config(config_path), stack_defaults or {})
    parameters = config.setdefault("parameters", {})
    parameters.update({k: v for k, v in overrides.items() if v is not None})
    for step_name, values in (step_overrides or {}).items():
        step_parameters = config.setdefault("steps", {}).setdefault(step_name, {}).setdefault("parameters", {})
        step_parameters.update({k: v for k, v in values.items() if v is not None})
    if no_cache:
        config["enable_cache"] = False
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="run-config-", delete=False)
    with handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return Path(handle.name)


def summarize(run: Any, stack_name: str) -> Dict[str, Any]:
    """The facts a user wants after a run, read back from the run's artifacts."""
    facts = {"run_name": run.name, "run_id": str(run.id), "status": str(run.status.value), "stack": stack_name}
    if run.status.value != "completed":  # submitted to a remote orchestrator that does not wait, or failed there
        return {**facts, "orchestrator_url": str(run.run_metadata.get("orchestrator_url", ""))}
    steps = run.steps
    metrics = steps["model_evaluation"].outputs["test_metrics"][0].load()
    registered = steps["register_model"].outputs["registered_model"][0].load()
    promotion = steps["promote_model"].outputs["promotion_decision"][0].load()
    from heartml.reports.model_card import mlflow_card_uri

    return {
        **facts,
        "test_metrics": metrics,
        "registered_model": {"name": registered.name, "version": registered.version, "uri": registered.model_uri},
        "promotion": promotion.model_dump(),
        "model_card": {"zenml_artifact": "model_card",
                       "mlflow_artifact": mlflow_card_uri(registered.run_id) if registered.run_id else None},
        "mlflow_tracking_uri": registered.tracking_uri,
    }


def print_summary(summary: Dict[str, Any]) -> None:
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    if "test_metrics" not in summary:
        click.echo(f"Follow it at: {summary.get('orchestrator_url') or 'the ZenML dashboard'}")
        return
    metrics = summary["test_metrics"]
    model = summary["registered_model"]
    click.echo("Test metrics: " + "  ".join(f"{k}={metrics[k]:.3f}" for k in
                                            ("roc_auc", "accuracy", "precision", "recall", "f1") if k in metrics))
    click.echo(f"Registered model: {model['name']} version {model['version']} ({model['uri']})")
    promotion = summary["promotion"]
    click.echo(textwrap.fill(f"Promotion:        {promotion['decision'].replace('_', ' ')}: {promotion['reason']}",
                             width=120, subsequent_indent=" " * 18, break_on_hyphens=False))
    click.echo(f"Aliases now:      production -> version {promotion['production_version']}, "
               f"staging -> version {promotion['staging_version']}")
    card = summary["model_card"]
    click.echo(f"Model card:       {card['mlflow_artifact'] or 'not in MLflow'} (ZenML artifact "
               f"'{card['zenml_artifact']}')")
    click.echo("Browse:           python run.py --dashboard   (ZenML dashboard + MLflow UI on 127.0.0.1), then")
    click.echo(f"                  http://127.0.0.1:8237/projects/default/runs/{summary['run_id']}")
    click.echo(f"                  http://127.0.0.1:5000/#/models/{model['name']}")


@click.command(help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stack", "stack_name",
              help="Check, register (idempotently) and activate configs/stacks/NAME.yaml first: local, azurite, azure.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="ZenML run configuration [default: configs/training.yaml; with --inference: "
                   "configs/inference.yaml].")
@click.option("--source", help="Data source URI; overrides the dataset's default_source (see Sources above).")
@click.option("--dataset", "dataset_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Dataset description, e.g. configs/datasets/heart_failure_records.yaml.")
@click.option("--no-cache", is_flag=True, help="Run every step even if a cached result exists.")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Write run name, stack, test metrics, the registered version and the promotion decision "
                   "(or the inference run's model and output) to this file.")
@click.option("--promote", "promote_version", metavar="VERSION",
              help="Move an alias to this registered model version by hand (no training); needs --reason.")
@click.option("--to", "alias", type=click.Choice(["production", "staging"]), default="production",
              show_default=True, help="With --promote: the alias to move.")
@click.option("--reason", help="With --promote: why, recorded with the promotion.")
@click.option("--inference", is_flag=True, help="Score a batch of records with the production model.")
@click.option("--input", "input_uri", metavar="URI", help="With --inference: the records (CSV/Parquet path, ...).")
@click.option("--output", "output_uri", metavar="URI",
              help="With --inference: where predictions go (.csv, .parquet, or a SQLAlchemy URL).")
@click.option("--dashboard", is_flag=True,
              help="Start the local ZenML dashboard and the MLflow UI on 127.0.0.1, print both URLs, and exit.")
@click.option("--dashboard-stop", is_flag=True, help="Stop what --dashboard started; the CLI keeps working locally.")
@click.option("--dashboard-ports", type=(int, int), default=(8237, 5000), show_default=True,
              metavar="ZENML MLFLOW", help="Loopback ports of the ZenML dashboard and the MLflow UI.")
@click.option("-v", "--verbose", is_flag=True,
              help="Show ZenML's and MLflow's full console logs (default: step progress, warnings and a summary; "
                   "the stored step logs in the dashboard are complete either way).")
def main(stack_name: Optional[str], config_path: Optional[Path], source: Optional[str],
         dataset_config: Optional[Path], no_cache: bool, summary_json: Optional[Path], promote_version: Optional[str],
         alias: str, reason: Optional[str], inference: bool, input_uri: Optional[str],
         output_uri: Optional[str], dashboard: bool, dashboard_stop: bool, dashboard_ports: tuple,
         verbose: bool) -> None:
    configure_console(verbose)
    from heartml.core.errors import InputError
    from heartml.platform.reliability import InterruptGuard

    if dashboard or dashboard_stop:
        manage_dashboard(stack_name, start=dashboard, ports=dashboard_ports)
        return

    check_option_combination(promote_version, reason, inference, input_uri, output_uri, source, dataset_config)
    config_path = (config_path or (INFERENCE_CONFIG if inference else DEFAULT_CONFIG)).resolve()
    if summary_json:
        summary_json = summary_json.resolve()
    guard = InterruptGuard()
    try:
        with guard:
            summary = dispatch(stack_name, config_path, source, dataset_config, no_cache, promote_version, alias,
                               reason, inference, input_uri, output_uri)
    except InputError as error:
        for line in error.lines:
            click.secho(f"error: {line}", fg="red", err=True)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, Exception) as error:
        if not (guard.interrupted or isinstance(error, KeyboardInterrupt)):
            raise
        click.secho(interruption_line(guard.signal_name or "SIGINT"), fg="yellow", err=True)
        sys.exit(guard.exit_code if guard.interrupted else 130)
    if not promote_version:
        (print_inference_summary if inference else print_summary)(summary)
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2))


def interruption_line(signal_name: str) -> str:
    """What an interruption left behind, in one line."""
    if STARTED_RUN is None:
        return f"interrupted ({signal_name}) before a pipeline run started"
    try:
        from zenml.client import Client

        status = Client().get_pipeline_run(STARTED_RUN, allow_name_prefix_match=False, hydrate=False).status.value
    except KeyError:
        return f"interrupted ({signal_name}) before run {STARTED_RUN} was created"
    except BaseException:  # noqa: BLE001 - e.g. a second Ctrl-C: the line is still worth printing
        status = "in an unknown state"
    return (f"interrupted ({signal_name}): run {STARTED_RUN} is marked {status} in ZenML; finished steps are "
            "cached, so the same command resumes after them")


def dispatch(stack_name: Optional[str], config_path: Path, source: Optional[str], dataset_config: Optional[Path],
             no_cache: bool, promote_version: Optional[str], alias: str, reason: Optional[str], inference: bool,
             input_uri: Optional[str], output_uri: Optional[str]) -> Dict[str, Any]:
    """Train, promote or infer, as the options say."""
    if promote_version:
        return promote(stack_name, config_path, promote_version, alias, reason or "")
    if inference:
        return infer(stack_name, config_path, input_uri, output_uri, no_cache)
    overrides = {"source": source, "dataset_config": str(dataset_config.resolve()) if dataset_config else None}
    if source:  # a relative path means relative to where the user is, not to the project
        from heartml.core.sources import absolute_local_source

        overrides["source"] = absolute_local_source(source, Path.cwd())
    return train(stack_name, config_path, overrides, no_cache)


def configure_console(verbose: bool) -> None:
    """Quiet by default: ZenML's terminal handler shows step progress and warnings only, MLflow its warnings."""
    if verbose:
        return
    from heartml.platform.console import MLFLOW_QUIET_LEVEL, quiet_zenml_console

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", MLFLOW_QUIET_LEVEL)  # read when mlflow is first imported
    import zenml  # noqa: F401  (installs ZenML's console handler, which the filter goes on)

    quiet_zenml_console()


def check_option_combination(promote_version: Optional[str], reason: Optional[str], inference: bool,
                             input_uri: Optional[str], output_uri: Optional[str], source: Optional[str],
                             dataset_config: Optional[str]) -> None:
    if promote_version and inference:
        raise click.UsageError("--promote and --inference are separate tasks: use one at a time")
    if promote_version and not (reason or "").strip():
        raise click.UsageError("--promote needs --reason TEXT (it is recorded with the promotion)")
    if reason and not promote_version:
        raise click.UsageError("--reason goes with --promote VERSION")
    if (input_uri or output_uri) and not inference:
        raise click.UsageError("--input/--output go with --inference")
    if inference and (source or dataset_config):
        raise click.UsageError("--source/--dataset are training options; --inference reads --input")


def manage_dashboard(stack_name: Optional[str], start: bool, ports: tuple) -> None:
    from heartml.platform import dashboard

    if not start:
        stopped = dashboard.stop()
        click.echo("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return
    use_stack(stack_name)
    from zenml.client import Client

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


def use_stack(stack_name: Optional[str]) -> Tuple[str, Any]:
    """Check, start, register and activate the named stack if given; the active stack's name and declaration."""
    from heartml.platform.reliability import setup_lock
    from heartml.platform.stacks import initialize_local_mlflow, local_stores_dir, prepare_stack

    # A second run.py waits here while the first creates the local stores (ZenML and MLflow guard neither).
    with setup_lock(local_stores_dir()):
        ensure_repository()
        from zenml.client import Client

        decl = prepare_stack(stack_name, echo=click.echo)
        initialize_local_mlflow()
        close_unfinished_work()
        return Client().active_stack_model.name, decl


def close_unfinished_work() -> None:
    """Runs left `running` by a killed run.py are marked failed; model versions whose run ended without completing
    their registration are marked abandoned (heartml/platform/reliability.py)."""
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from heartml.platform.reliability import abandon_pending_versions, close_killed_runs
    from heartml.platform.stacks import local_stores_dir
    from heartml.registry.model_versions import RegistryError, configure_mlflow_from_active_stack

    try:
        configure_mlflow_from_active_stack()
        mlflow_client = MlflowClient()
    except RegistryError:  # no MLflow tracker on this stack
        mlflow_client = None
    lines = close_killed_runs(local_stores_dir(), Client().zen_store.url, mlflow_client)
    if mlflow_client is not None:
        lines += abandon_pending_versions(mlflow_client)
    for line in lines:
        click.echo(line)


def run_pipeline(pipeline: Any, run_config: Path) -> Any:
    """Run `pipeline` under a run name fixed now; while the in-process (local) orchestrator executes it, a marker
    held by this process lets the next run.py close the run if this process gets killed."""
    import contextlib

    from zenml.client import Client

    from heartml.platform.reliability import concrete_run_name, run_marker
    from heartml.platform.stacks import local_stores_dir

    global STARTED_RUN
    config = load_config(run_config)
    config["run_name"] = concrete_run_name(config, pipeline.name)
    run_config.write_text(yaml.safe_dump(config, sort_keys=False))
    client = Client()
    in_process = client.active_stack_model.components["orchestrator"][0].flavor_name == "local"
    marker = (run_marker(local_stores_dir(), client.zen_store.url, config["run_name"]) if in_process
              else contextlib.nullcontext())
    with marker:
        STARTED_RUN = config["run_name"]
        return pipeline.with_options(config_path=str(run_config))()


def registered_model_name(config: Dict[str, Any]) -> str:
    """The MLflow registered model a training config registers into."""
    parameters = (config.get("steps", {}).get("register_model") or {}).get("parameters") or {}
    return parameters.get("registered_model_name") or config.get("model", {}).get("name") \
        or "heart_failure_classifier"


def train(stack_name: Optional[str], config_path: Path, overrides: Dict[str, Any], no_cache: bool) -> Dict[str, Any]:
    os.chdir(ROOT)  # where the pipeline resolves relative paths too
    from heartml.registry.model_versions import source_commit

    step_overrides = {"register_model": {"git_commit": source_commit(ROOT)}}
    checked_config = effective_config(config_path, overrides, no_cache, step_overrides)
    try:
        preflight_data(checked_config, config_path)  # before ZenML is touched: bad data starts no run
    finally:
        checked_config.unlink(missing_ok=True)
    active, decl = use_stack(stack_name)
    from zenml.client import Client

    from heartml.platform.stacks import prepare_local_mlflow, run_settings
    from pipelines.training import training_pipeline

    run_config = effective_config(config_path, overrides, no_cache, step_overrides,
                                  run_settings(decl) if decl else None)
    try:
        prepare_local_mlflow(run_config, training_pipeline.name)
        run = run_pipeline(training_pipeline, run_config)
    finally:
        run_config.unlink(missing_ok=True)
    return summarize(Client().get_pipeline_run(run.id), active)


def preflight_data(run_config: Path, config_path: Path) -> None:
    """Check the data options and read + validate the source before submitting, so bad data fails in one clear
    line per problem and no run starts. The ingestion step validates again wherever it runs (remote too)."""
    from heartml.platform.preflight import check_run_config

    label = str(config_path.relative_to(ROOT)) if config_path.is_relative_to(ROOT) else str(config_path)
    check_run_config(yaml.safe_load(run_config.read_text()) or {}, ROOT, label)


def promote(stack_name: Optional[str], config_path: Path, version: str, alias: str, reason: str) -> Dict[str, Any]:
    """A manual promotion (or rollback): move the alias, record who/when/why, mirror the ZenML stages."""
    use_stack(stack_name)
    from uuid import UUID

    from mlflow.tracking import MlflowClient
    from zenml import log_metadata

    from heartml.registry.model_versions import ZENML_VERSION_ID_TAG, configure_mlflow_from_active_stack
    from heartml.registry.promotion import mirror_stages_to_zenml, promote_manually

    configure_mlflow_from_active_stack()
    client = MlflowClient()
    name = registered_model_name(load_config(config_path))
    record = promote_manually(client, name, version, alias, reason)
    zenml_version_id = client.get_model_version(name, record.version).tags.get(ZENML_VERSION_ID_TAG)
    if zenml_version_id:
        log_metadata(metadata={f"manual_promotion_{alias}": record.model_dump(exclude_none=True)},
                     model_version_id=UUID(zenml_version_id))
    changes = mirror_stages_to_zenml(client, name)
    previous = f" (was version {record.previous_version})" if record.previous_version else ""
    click.echo(f"Promoted {name} version {record.version} to {alias}{previous}; reason recorded: {record.reason}")
    for change in changes:
        click.echo(change)
    click.echo(f"Audit record: MLflow experiment 'model-promotions', run {record.audit_run_id}")
    return record.model_dump()


def infer(stack_name: Optional[str], config_path: Path, input_uri: Optional[str], output_uri: Optional[str],
          no_cache: bool) -> Dict[str, Any]:
    from heartml.core.errors import InputError
    from heartml.core.sinks import parse_sink

    run_config = effective_config(config_path, {"input_uri": input_uri, "output_uri": output_uri}, no_cache)
    try:
        parameters = yaml.safe_load(run_config.read_text()).get("parameters", {})
        for key, option in (("input_uri", "--input"), ("output_uri", "--output")):
            if not parameters.get(key):
                raise InputError(f"--inference needs {option} URI (or {key} in {config_path.name})")
        parse_sink(parameters["output_uri"], parameters.get("output_table") or "predictions")
        active, _ = use_stack(stack_name)
        from zenml.client import Client

        from pipelines.inference import inference_pipeline

        serving = preflight_inference(parameters)
        run = run_pipeline(inference_pipeline, run_config)
    finally:
        run_config.unlink(missing_ok=True)
    run = Client().get_pipeline_run(run.id)
    report = run.steps["write_to_sink"].outputs["sink_report"][0].load()
    return {
        "run_name": run.name,
        "run_id": str(run.id),
        "status": str(run.status.value),
        "stack": active,
        "model": {"name": serving.name, "version": serving.version, "alias": serving.alias},
        "output": report.model_dump(),
        "mlflow_tracking_uri": serving.tracking_uri,
    }


def preflight_inference(parameters: Dict[str, Any]) -> Any:
    """Before submitting: a production model exists and the records pass its training schema."""
    from mlflow.tracking import MlflowClient

    from heartml.core.sources import read_source
    from heartml.registry.model_versions import configure_mlflow_from_active_stack
    from heartml.registry.serving import resolve_serving_model, validate_records

    configure_mlflow_from_active_stack()
    serving = resolve_serving_model(MlflowClient(), parameters.get("registered_model_name")
                                    or "heart_failure_classifier", parameters.get("model_alias") or "production")
    uri = parameters["input_uri"]
    validate_records(read_source(uri, serving.dataset.read_options), serving.dataset, uri)
    return serving


def print_inference_summary(summary: Dict[str, Any]) -> None:
    model, output = summary["model"], summary["output"]
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    click.echo(f"Scored {output['rows']} records with {model['name']} version {model['version']} "
               f"({model['alias']}) -> {output['destination']}")


if __name__ == "__main__":
    main()
