"""Heart-disease prediction on ZenML + MLflow: train, promote, score (in batches and online), monitor, browse,
and manage the stacks.

With no command, `python run.py [TRAIN OPTIONS]` trains, as `python run.py train` does: `python run.py --stack
local` registers and activates the local stack, then trains; `python run.py` trains on your active stack (after
`zenml stack set NAME`). Every command has --help with examples.
"""

from __future__ import annotations

import os
import sys

# Quiet, offline defaults, set before zenml or mlflow is imported; an explicit setting in the environment wins.
for _name, _value in {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # MLflow draws a progress bar for every artifact copy, even local sub-second ones, into the step logs too.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # No colour codes in logs, files and pipes: ZenML colours its console lines unless told not to.
    **({} if sys.stderr.isatty() and not os.environ.get("NO_COLOR") else {"ZENML_LOGGING_COLORS_DISABLED": "true"}),
}.items():
    os.environ.setdefault(_name, _value)

import contextlib  # noqa: E402 - after the environment defaults above
import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple  # noqa: E402

import click  # noqa: E402
import yaml  # noqa: E402

from heartml.platform import speedups  # noqa: E402

if TYPE_CHECKING:  # pandas behind it: imported when a command needs it
    from heartml.core.versioning import DataVersion

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "training.yaml"
INFERENCE_CONFIG = ROOT / "configs" / "inference.yaml"
STARTED_RUN: Optional[str] = None  # the pipeline run this process started, for the line after an interruption
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}

STACK_HELP = ("Register configs/stacks/NAME.yaml (idempotently) and make it your active ZenML stack, as "
              "`zenml stack set NAME` does: later commands without --stack use it too. Without --stack: the active "
              "stack. Declared: local, azurite, s3, team, azure.")


# ----------------------------------------------------------------------------------------------------------------
# The command group: no command means `train`; errors are one line.


class HeartmlGroup(click.Group):
    """`python run.py [TRAIN OPTIONS]` runs `train`; a usage error or bad input is one `error: ...` line."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
            args = ["train", *args]
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx else "python run.py"
            click.echo(f"error: {error.format_message()} (see: {command} --help)", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            click.echo(f"error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except Exception as error:  # a server refusing this account or not answering: one line, not a traceback
            line = server_failure_line(error)
            if line is None:
                raise
            click.secho(f"error: {line}", fg="red", err=True)
            sys.exit(3)


def server_failure_line(error: BaseException) -> Optional[str]:
    """The ZenML server, the MLflow server or the blob store refused the account (401/403) or did not answer: one
    line saying which and what to do, else None (a bug keeps its traceback)."""
    from heartml.core.errors import first_line
    from heartml.registry.access import causes, mlflow_failure_line

    line = mlflow_failure_line(error)
    if line is not None:
        return line
    from zenml.config.global_config import GlobalConfiguration

    zenml_url = GlobalConfiguration().store_configuration.url
    for cause in causes(error):
        kind = type(cause).__name__
        if kind in ("CredentialsNotValid", "AuthorizationException"):
            return (f"ZenML server {zenml_url} refused the request (401: no valid login): export an account's "
                    "settings (ZENML_STORE_API_KEY, or ZENML_STORE_USERNAME/_PASSWORD) or `zenml login URL`")
        if kind == "ServiceRequestError":  # azure-core: the blob endpoint did not answer
            return (f"the artifact store's blob endpoint did not answer ({first_line(cause)[:160]}); the run stopped: "
                    "start it again, then rerun (finished steps are cached)")
        if kind in ("ConnectionError", "MaxRetryError") and zenml_url.startswith("http") and \
                zenml_url.split("//")[1] in str(cause):
            return (f"ZenML server {zenml_url} did not answer, after retries; the run stopped: start the server "
                    "again, then rerun (finished steps are cached)")
    return None


def fail_on_input_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Bad data, configuration or registry state: one `error:` line per problem and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from heartml.core.errors import InputError

        try:
            return command(*args, **kwargs)
        except InputError as error:
            for line in error.lines:
                click.secho(f"error: {line}", fg="red", err=True)
            sys.exit(error.exit_code)
    return wrapper


@click.group(cls=HeartmlGroup, help=__doc__, context_settings=CONTEXT)
def cli() -> None:
    pass


def stack_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--stack", "stack_name", metavar="NAME", help=STACK_HELP)(command)


def verbose_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-v", "--verbose", is_flag=True,
                        help="Show ZenML's and MLflow's full console logs (default: step progress, warnings and a "
                             "summary; the stored step logs in the dashboard are complete either way).")(command)


def config_option(default: str, what: str = "ZenML run configuration") -> Callable[..., Any]:
    return click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        metavar="PATH", help=f"{what} [default: {default}].")


def no_cache_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-cache", is_flag=True, help="Run every step even if a cached result exists.")(command)


def pipeline_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """What every command that runs a pipeline takes: --no-cache, --summary-json, --verbose; one-line input errors."""
    return no_cache_option(summary_option(verbose_option(fail_on_input_errors(command))))


def summary_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                        help="Also write the run's summary (run, stack, metrics, model version, decisions) as "
                             "JSON to PATH.")(command)


# ----------------------------------------------------------------------------------------------------------------
# train


@cli.command(context_settings=CONTEXT, short_help="Train, evaluate, register and gate a new model version.",
             epilog="""\b
Examples:
  python run.py train --stack local           # also: python run.py --stack local
  python run.py train --stack azurite         # artifacts in Azure Blob Storage (Azurite, started if needed)
  python run.py train --stack azure           # Azure ML; says first what is missing (docs: how-to/azure-ml)
  python run.py train --no-cache --summary-json out/summary.json
  python run.py train --source data/heart.csv          # a local CSV or Parquet file with the dataset's schema
  python run.py train --source 'sqlite:///heart.db#table=heart'
  python run.py train --dataset configs/datasets/heart_failure_records.yaml

\b
Sources (--source URI, or default_source in the dataset description):
  bundled://heart, bundled://heart_failure_records   files shipped in a pinned package, sha256-verified
  PATH, file://PATH                                  CSV or Parquet (optional #sha256=HEX pin)
  https://host/heart.csv#sha256=HEX                  downloaded once into $HEARTML_DATA_CACHE
  sqlite:///heart.db#table=T, postgresql://.../db#query=SELECT ...   any SQLAlchemy URL
  az://container/path.csv                            Azure Blob via adlfs (AZURE_STORAGE_CONNECTION_STRING)
""")
@stack_option
@config_option("configs/training.yaml")
@click.option("--source", metavar="URI", help="Data source; overrides the dataset's default_source (see Sources).")
@click.option("--dataset", "dataset_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="PATH", help="Dataset description, e.g. configs/datasets/heart_failure_records.yaml.")
@pipeline_run_options
def train(stack_name: Optional[str], config_path: Optional[Path], source: Optional[str],
          dataset_config: Optional[Path], no_cache: bool, summary_json: Optional[Path], verbose: bool) -> None:
    """Train, evaluate, register and gate a new model version."""
    overrides = {"source": source, "dataset_config": str(dataset_config.resolve()) if dataset_config else None}
    if source:  # a relative path means relative to where the user is, not to the project
        from heartml.core.sources import absolute_local_source

        overrides["source"] = absolute_local_source(source, Path.cwd())
    config = (config_path or DEFAULT_CONFIG).resolve()
    summary = guarded(lambda: run_training(stack_name, config, overrides, no_cache, verbose))
    print_summary(summary)
    write_summary(summary, summary_json)


def run_training(stack_name: Optional[str], config_path: Path, overrides: Dict[str, Any],
                 no_cache: bool, verbose: bool) -> Dict[str, Any]:
    os.chdir(ROOT)  # where the pipeline resolves relative paths too
    from heartml.core.versioning import source_commit

    step_overrides = {"register_model": {"git_commit": source_commit(ROOT)}}
    checked_config = effective_config(config_path, overrides, no_cache, step_overrides)
    try:
        checked = preflight_data(checked_config, config_path)  # before ZenML is touched: bad data starts no run
    finally:
        checked_config.unlink(missing_ok=True)
    # Ingestion reads the source again and must find this data: unchanged data is then a cache hit.
    step_overrides["data_ingestion"] = {"expected_data_hash": checked.data_hash}
    configure_console(verbose)  # imports ZenML (seconds), which bad data never needs
    active, decl = use_stack(stack_name)
    import mlflow
    from zenml.client import Client

    from heartml.platform.declarations import run_settings
    from heartml.platform.stacks import prepare_local_mlflow
    from heartml.registry.access import check_can_register
    from pipelines.training import training_pipeline

    name = model_name(load_config(config_path))
    check_can_register(mlflow.get_tracking_uri(), name, f"train and register versions of model {name!r}")

    run_config = effective_config(config_path, overrides, no_cache, step_overrides,
                                  run_settings(decl) if decl else None, cached_steps=["data_ingestion"])
    try:
        prepare_local_mlflow(run_config, training_pipeline.name)
        run = run_pipeline(training_pipeline, run_config)
    finally:
        run_config.unlink(missing_ok=True)
    return summarize(Client().get_pipeline_run(run.id), active)


def preflight_data(run_config: Path, config_path: Path) -> "DataVersion":
    """Check the data options and read + validate the source before submitting, so bad data fails in one clear
    line per problem and no run starts; the version of the data read. The ingestion step validates again wherever
    it runs (remote too)."""
    from heartml.platform.preflight import check_run_config

    label = str(config_path.relative_to(ROOT)) if config_path.is_relative_to(ROOT) else str(config_path)
    return check_run_config(yaml.safe_load(run_config.read_text()) or {}, ROOT, label)


def summarize(run: Any, stack_name: str) -> Dict[str, Any]:
    """The facts a user wants after a run, read back from the run's artifacts."""
    facts = {"run_name": run.name, "run_id": str(run.id), "status": str(run.status.value), "stack": stack_name}
    if run.status.value != "completed":  # submitted to a remote orchestrator that does not wait, or failed there
        return {**facts, "orchestrator_url": str(run.run_metadata.get("orchestrator_url", ""))}
    steps = run.steps
    metrics = steps["model_evaluation"].outputs["test_metrics"][0].load()
    registered = steps["register_model"].outputs["registered_model"][0].load()
    promotion = steps["promote_model"].outputs["promotion_decision"][0].load()
    card = steps["write_model_card"].outputs["model_card"][0].load()
    from zenml.client import Client

    from heartml.reports.model_card import mlflow_card_uri

    return {
        **facts,
        "test_metrics": metrics,
        "decision_threshold": registered.decision_threshold,
        "registered_model": {"name": registered.name, "version": registered.version, "uri": registered.model_uri},
        "promotion": promotion.model_dump(),
        "model_card": {"zenml_artifact": "model_card",
                       "mlflow_artifact": mlflow_card_uri(registered.run_id) if registered.run_id else None,
                       "warnings": card.warnings},
        "mlflow_tracking_uri": registered.tracking_uri,
        "zenml_url": Client().zen_store.url,
    }


def print_summary(summary: Dict[str, Any]) -> None:
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    if "test_metrics" not in summary:
        click.echo(f"Follow it at: {summary.get('orchestrator_url') or 'the ZenML dashboard'}")
        return
    metrics = summary["test_metrics"]
    model = summary["registered_model"]
    click.echo(f"Test metrics (threshold {summary['decision_threshold']:g}): " + "  ".join(
        f"{k}={metrics[k]:.3f}" for k in ("roc_auc", "accuracy", "precision", "recall", "f1") if k in metrics))
    click.echo(f"Registered model: {model['name']} version {model['version']} ({model['uri']})")
    promotion = summary["promotion"]
    click.echo(textwrap.fill(f"Promotion:        {promotion['decision'].replace('_', ' ')}: {promotion['reason']}",
                             width=120, subsequent_indent=" " * 18, break_on_hyphens=False))
    click.echo(f"Aliases now:      production -> version {promotion['production_version']}, "
               f"staging -> version {promotion['staging_version']}")
    card = summary["model_card"]
    click.echo(f"Model card:       {card['mlflow_artifact'] or 'not in MLflow'} (ZenML artifact "
               f"'{card['zenml_artifact']}')")
    for warning in card.get("warnings") or []:
        click.secho(textwrap.fill(f"Card warning:     {warning}", width=120, subsequent_indent=" " * 18), fg="yellow")
    tracking_uri = summary.get("mlflow_tracking_uri") or ""
    if tracking_uri.startswith(("http://", "https://")):  # shared servers: their own dashboards
        click.echo(f"Browse:           {summary['zenml_url']}/projects/default/runs/{summary['run_id']}")
        click.echo(f"                  {tracking_uri.rstrip('/')}/#/models/{model['name']}")
        return
    click.echo("Browse:           python run.py ui start   (ZenML dashboard + MLflow UI on 127.0.0.1), then")
    click.echo(f"                  http://127.0.0.1:8237/projects/default/runs/{summary['run_id']}")
    click.echo(f"                  http://127.0.0.1:5000/#/models/{model['name']}")


# ----------------------------------------------------------------------------------------------------------------
# tune-worker


@cli.command("tune-worker", context_settings=CONTEXT,
             short_help="Take tuning trials from the training runs' shared Optuna studies.", epilog="""\b
Examples:
  export HEARTML_TUNING_STORAGE=postgresql+psycopg2://optuna@db:5432/optuna   # PGPASSWORD in the environment
  python run.py tune-worker --storage '$HEARTML_TUNING_STORAGE'          # until no study is open for 10 min
  python run.py tune-worker --max-runs 1 --summary-json worker.json     # the config's tuning.storage
""")
@click.option("--storage", metavar="URL|$VARIABLE", help="The Optuna RDB storage the training runs tune on "
              "[default: tuning.storage of the config].")
@click.option("--max-runs", type=click.IntRange(min=1), help="Stop after working on this many training runs "
              "(each to its last family).")
@click.option("--idle-seconds", type=click.FloatRange(min=0), default=600, show_default=True,
              help="Stop when no study has been open for this long.")
@stack_option
@config_option("configs/training.yaml", "Training configuration whose tuning.storage to use")
@summary_option
@verbose_option
@fail_on_input_errors
def tune_worker(storage: Optional[str], max_runs: Optional[int], idle_seconds: float, stack_name: Optional[str],
                config_path: Optional[Path], summary_json: Optional[Path], verbose: bool) -> None:
    """Pull trials from the Optuna studies that training runs open on a shared RDB storage (tuning.storage), so
    that several processes or machines tune one run together. The worker scores trials exactly as the run's
    model_building step does, on the step's own input artifacts, so it needs the run's ZenML store and
    artifact store: the same stack."""
    from pydantic import ValidationError

    from heartml.core.errors import InputError
    from heartml.core.tuning import TuningOptions

    configure_console(verbose)
    if storage is None:
        modeling = ((((load_config((config_path or DEFAULT_CONFIG).resolve()).get("steps") or {})
                      .get("model_building") or {}).get("parameters") or {}).get("modeling") or {})
        storage = (modeling.get("tuning") or {}).get("storage")
        if not storage:
            raise InputError("tune-worker: no storage: pass --storage, or set "
                             "steps.model_building.parameters.modeling.tuning.storage in the config")
    try:
        url = TuningOptions(storage=storage).storage_url()
    except ValidationError as error:
        raise InputError(f"tune-worker: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    except ValueError as error:
        raise InputError(f"tune-worker: {error}") from None
    use_stack(stack_name)

    from heartml.platform.tuning_workers import run_worker

    speedups.libraries_loaded()
    report = guarded(lambda: run_worker(url, max_runs=max_runs, idle_seconds=idle_seconds))
    trials = sum(len(numbers) for numbers in report.trials.values())
    click.echo(f"Worker {report.worker}: {trials} trials in {len(report.trials)} studies of "
               f"{len(report.runs)} training runs")
    write_summary(dataclasses.asdict(report), summary_json)


# ----------------------------------------------------------------------------------------------------------------
# promote


@cli.command(context_settings=CONTEXT, short_help="Move production or staging to a version by hand, with a reason.",
             epilog="""\b
Examples:
  python run.py promote 3 --to production --reason "reviewed by cardiology, ticket 42"
  python run.py promote 2 --to production --reason "rollback: version 3 miscalibrated"
  python run.py promote 4 --to staging --reason "candidate for the review board"
""")
@click.argument("version")
@click.option("--to", "alias", type=click.Choice(["production", "staging"]), required=True,
              help="The alias to move to VERSION.")
@click.option("--reason", required=True, help="Why; recorded with the promotion (tags, audit run, ZenML metadata).")
@stack_option
@config_option("configs/training.yaml", "Training configuration naming the model (model.name)")
@fail_on_input_errors
def promote(version: str, alias: str, reason: str, stack_name: Optional[str], config_path: Optional[Path]) -> None:
    """Move an alias of the registered model to VERSION by hand (a promotion or a rollback), recording who, when and
    why. Only complete versions can be promoted."""
    if not reason.strip():
        raise click.BadParameter("must say why (it is recorded with the promotion)", param_hint="--reason")
    configure_console(verbose=False)
    use_stack(stack_name)
    from uuid import UUID

    from mlflow.tracking import MlflowClient
    from zenml import log_metadata

    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack, mirror_stages_to_zenml
    from heartml.registry.access import check_can_register
    from heartml.registry.model_versions import ZENML_VERSION_ID_TAG
    from heartml.registry.promotion import promote_manually

    tracking_uri = configure_mlflow_from_active_stack()
    client = MlflowClient()
    name = model_name(load_config((config_path or DEFAULT_CONFIG).resolve()))
    check_can_register(tracking_uri, name, f"move the {alias} alias of model {name!r}")
    record = promote_manually(client, name, version, alias, reason)
    zenml_version_id = client.get_model_version(name, record.version).tags.get(ZENML_VERSION_ID_TAG)
    if zenml_version_id:
        log_metadata(metadata={f"manual_promotion_{alias}": record.model_dump(exclude_none=True)},
                     model_version_id=UUID(zenml_version_id))
    changes = mirror_stages_to_zenml(client, name)
    previous = f" (was version {record.previous_version})" if record.previous_version else ""
    click.echo(f"Promoted {name} version {record.version} to {alias}{previous}; reason recorded: {record.reason}")
    if alias == "production":
        publish_to_azureml(client, name, record.version)
    for change in changes:
        click.echo(change)
    click.echo(f"Audit record: MLflow experiment 'model-promotions', run {record.audit_run_id}")


@contextlib.contextmanager
def azure_errors_in_one_line(what: str) -> Iterator[None]:
    """Azure's answer (auth, quota, a name or version taken) as one `error:` line about `what`."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as error:
        raise click.ClickException(f"{what}: {type(error).__name__}: {str(error).splitlines()[0][:300]}") from None


def publish_to_azureml(client: Any, name: str, version: str) -> None:
    """On a stack with an AzureML orchestrator: the production version in the workspace's model registry too."""
    from heartml.platform.azure_endpoint import register_in_workspace
    from heartml.platform.zenml_registry import azureml_workspace_of_active_stack

    workspace = azureml_workspace_of_active_stack()
    if workspace is None:
        return
    with azure_errors_in_one_line(f"azure ml model registry of {workspace['workspace']}"):
        created = register_in_workspace(workspace, client, name, version)
    click.echo(f"Registered in Azure ML workspace {created['workspace']}: model {created['name']} version "
               f"{created['version']} (MLflow model type, the version's tags)")


def model_name(config: Dict[str, Any]) -> str:
    """The model a training config registers: its ZenML model's name (configs/training.yaml, `model.name`)."""
    name = (config.get("model") or {}).get("name")
    if not name:
        raise click.UsageError("the training configuration names no model (model.name)")
    return name


# ----------------------------------------------------------------------------------------------------------------
# predict


@cli.command(context_settings=CONTEXT, short_help="Score a batch of patient records with the production model.",
             epilog="""\b
Examples:
  python run.py predict --input patients.csv --output predictions.csv
  python run.py predict --input patients.csv --output predictions.parquet
  python run.py predict --input patients.csv --output sqlite:///predictions.db   # table `predictions`, appended
  python run.py predict --input az://container/patients.csv --output az://container/scored.parquet
""")
@click.option("--input", "input_uri", metavar="URI",
              help="The records: CSV/Parquet path, file://, az://, or a SQLAlchemy URL (as training sources) "
                   "[default: input_uri in the config].")
@click.option("--output", "output_uri", metavar="URI",
              help="Where predictions go: .csv, .parquet (local or fsspec URL), or a SQLAlchemy URL "
                   "[default: output_uri in the config].")
@stack_option
@config_option("configs/inference.yaml")
@pipeline_run_options
def predict(input_uri: Optional[str], output_uri: Optional[str], stack_name: Optional[str],
            config_path: Optional[Path], no_cache: bool, summary_json: Optional[Path], verbose: bool) -> None:
    """Score a batch of patient records with the production model (batch inference pipeline). Records are validated
    against the model's own training schema first: bad input writes nothing."""
    configure_console(verbose)
    config = (config_path or INFERENCE_CONFIG).resolve()
    summary = guarded(lambda: run_inference(stack_name, config, input_uri, output_uri, no_cache))
    model, output = summary["model"], summary["output"]
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    click.echo(f"Scored {output['rows']} records with {model['name']} version {model['version']} "
               f"({model['alias']}) -> {output['destination']}")
    print_drift(summary)
    write_summary(summary, summary_json)


def run_inference(stack_name: Optional[str], config_path: Path, input_uri: Optional[str],
                  output_uri: Optional[str], no_cache: bool) -> Dict[str, Any]:
    from heartml.core.errors import InputError
    from heartml.core.sinks import parse_sink

    # The model's name is set once, in the training configuration, unless this configuration names another.
    configured = (load_config(config_path).get("parameters") or {}).get("registered_model_name")
    overrides = {"input_uri": input_uri, "output_uri": output_uri,
                 "registered_model_name": configured or model_name(load_config(DEFAULT_CONFIG))}
    run_config = effective_config(config_path, overrides, no_cache)
    try:
        parameters = yaml.safe_load(run_config.read_text()).get("parameters", {})
        for key, option in (("input_uri", "--input"), ("output_uri", "--output")):
            if not parameters.get(key):
                raise InputError(f"predict needs {option} URI (or {key} in {config_path.name})")
        parse_sink(parameters["output_uri"], parameters.get("output_table") or "predictions")
    finally:
        run_config.unlink(missing_ok=True)
    active, decl = use_stack(stack_name)

    from pipelines.inference import inference_pipeline

    serving = preflight_inference(parameters)
    run = run_on_stack(inference_pipeline, config_path, overrides, no_cache, decl)
    report = run.steps["write_to_sink"].outputs["sink_report"][0].load()
    drift = run.steps["monitor_drift"].outputs["drift_report"][0].load()
    return {
        "run_name": run.name,
        "run_id": str(run.id),
        "status": str(run.status.value),
        "stack": active,
        "model": {"name": serving.name, "version": serving.version, "alias": serving.alias},
        "output": report.model_dump(),
        **drift_summary(drift),
        "mlflow_tracking_uri": serving.tracking_uri,
    }


def drift_summary(report: Any) -> Dict[str, Any]:
    """The summary JSON's monitoring part: the two booleans at the top level, the details beside them."""
    facts = report.summary()
    return {"drift_detected": facts["drift_detected"], "retraining_recommended": facts["retraining_recommended"],
            "monitoring": {**facts, "gate": report.gate, "zenml_artifact": "drift_report"}}


def print_drift(summary: Dict[str, Any]) -> None:
    monitoring = summary["monitoring"]
    click.secho(textwrap.fill(f"Drift:            {monitoring['verdict']}", width=120, subsequent_indent=" " * 18),
                fg="yellow" if summary["drift_detected"] else None)


def preflight_inference(parameters: Dict[str, Any]) -> Any:
    """Before submitting: a production model exists and the records pass its training schema."""
    from mlflow.tracking import MlflowClient

    from heartml.core.sources import read_source
    from heartml.core.validation import validate_records
    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from heartml.registry.serving import resolve_serving_model

    configure_mlflow_from_active_stack()
    serving = resolve_serving_model(MlflowClient(), parameters["registered_model_name"],
                                    parameters.get("model_alias") or "production")
    uri = parameters["input_uri"]
    validate_records(read_source(uri, serving.dataset.read_options), serving.dataset, uri)
    return serving


# ----------------------------------------------------------------------------------------------------------------
# serve


SERVING_CONFIG = ROOT / "configs" / "serving.yaml"
MONITORING_CONFIG = ROOT / "configs" / "monitoring.yaml"


@cli.command(context_settings=CONTEXT, short_help="Serve the production model online (FastAPI), following its alias.",
             epilog="""\b
Examples:
  python run.py serve                           # 127.0.0.1:8080, OpenAPI at /docs
  curl -s 127.0.0.1:8080/predict -H 'content-type: application/json' -d @patients.json
  HEARTML_SERVE_TOKEN=... python run.py serve --host 0.0.0.0   # beyond loopback: bearer token required
""")
@click.option("--host", help="Interface to listen on [default: host in the config, 127.0.0.1].")
@click.option("--port", type=int, help="Port [default: port in the config, 8080].")
@stack_option
@config_option("configs/serving.yaml", "Serving configuration")
@verbose_option
@fail_on_input_errors
def serve(host: Optional[str], port: Optional[int], stack_name: Optional[str], config_path: Optional[Path],
          verbose: bool) -> None:
    """Serve the model version behind the `production` alias (configs/serving.yaml) on FastAPI + uvicorn: POST
    /predict (one or many patients; probability, class at the registered threshold, version, SHAP values on
    request), GET /health, /ready, /model, OpenAPI at /openapi.json. A promotion or rollback is followed within
    follow_interval_seconds, without a restart. Every scored patient goes to the request log (SQL) for
    `python run.py monitor`."""
    configure_console(verbose)
    from heartml.core.sources import display_uri
    from heartml.platform.serving import load_serve_options, run_server, serving_token

    path = (config_path or SERVING_CONFIG).resolve()
    options = load_serve_options(path, path.name)
    options = options.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    _, decl = use_stack(stack_name)  # the checks training makes (on azure: credentials, servers, settings)
    orchestrator = decl.component("orchestrator") if decl else None
    if orchestrator is not None and orchestrator.flavor == "azureml":
        serve_on_azure(options, decl)
        return
    token = serving_token(options.token, options.host)
    app, follower, request_log = build_server(options, token)
    model = follower.current.serving
    click.secho(f"Serving {model.name} version {model.version} ({model.alias}) on http://{options.host}:"
                f"{options.port} (OpenAPI: /docs){'; bearer token required' if token else ''}", bold=True)
    click.echo(f"Following alias '{options.alias}' every {options.follow_interval_seconds:g} s; request log: "
               f"{display_uri(options.request_log.url) if options.request_log.url else 'off'}. Ctrl-C stops.")
    speedups.libraries_loaded()
    try:
        run_server(app, options)
    finally:
        follower.stop()
        if request_log is not None:
            request_log.close()


def served_model_name(options: Any) -> str:
    """configs/serving.yaml's model_name, else the model configs/training.yaml trains."""
    return options.model_name or model_name(load_config(DEFAULT_CONFIG))


def serve_on_azure(options: Any, decl: Any) -> None:
    """The alias's version as an Azure ML managed online endpoint (configs/serving.yaml `azure:`)."""
    import tempfile

    from mlflow.tracking import MlflowClient

    from heartml.platform.azure_endpoint import deploy_online
    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from heartml.registry.model_versions import download_model_files
    from heartml.registry.serving import resolve_serving_model

    configure_mlflow_from_active_stack()
    serving = resolve_serving_model(MlflowClient(), served_model_name(options), options.alias)
    with tempfile.TemporaryDirectory(prefix="heartml-endpoint-") as folder:
        files = download_model_files(serving.uri, Path(folder))
        with azure_errors_in_one_line(f"azure ml endpoint {options.azure.endpoint_name}"):
            result = deploy_online(decl, options.azure, serving, files)
    click.secho(f"Azure ML endpoint {result['endpoint']} (workspace {result['workspace']}) serves {serving.name} "
                f"version {serving.version} ({serving.alias}); deployment {result['deployment']} takes "
                f"{result['traffic'].get(result['deployment'], 0)}% of traffic", bold=True)
    click.echo(f"Scoring URI: {result['scoring_uri'] or 'see the endpoint in Azure ML studio'}")


def build_server(options: Any, token: Optional[str]) -> Tuple[Any, Any, Any]:
    """The app, its alias follower (already holding the current version) and its request log."""
    from mlflow.tracking import MlflowClient

    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from heartml.serving.app import create_app
    from heartml.serving.follower import ModelFollower
    from heartml.serving.request_log import RequestLog, engine_for

    configure_mlflow_from_active_stack()
    name = served_model_name(options)
    follower = ModelFollower(MlflowClient(), name, options.alias, options.follow_interval_seconds)
    follower.refresh()
    if follower.current is None:  # say why in the registry's own words
        from heartml.registry.serving import resolve_serving_model

        resolve_serving_model(MlflowClient(), name, options.alias)
        raise click.ClickException(f"version of {name} ({options.alias}) did not load: {follower.last_error}")
    request_log = None
    if options.request_log.url:
        log_options = options.request_log
        request_log = RequestLog(engine_for(log_options.url, ROOT), log_options.table, log_options.retention_days)
        request_log.purge()
    follower.start()
    return create_app(options, follower, request_log, token), follower, request_log


@cli.command(context_settings=CONTEXT, short_help="Drift of the patients served online from the training data.",
             epilog="""\b
Examples:
  python run.py monitor                        # the last 24 h of the request log (configs/serving.yaml)
  python run.py monitor --hours 168 --summary-json drift.json
""")
@click.option("--hours", type=float, help="Window: the patients scored in the last HOURS [default: hours in the "
                                          "config, 24].")
@click.option("--serving-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=SERVING_CONFIG, show_default="configs/serving.yaml", help="Where the request log is.")
@stack_option
@config_option("configs/monitoring.yaml")
@pipeline_run_options
def monitor(hours: Optional[float], serving_config: Path, stack_name: Optional[str], config_path: Optional[Path],
            no_cache: bool, summary_json: Optional[Path], verbose: bool) -> None:
    """Compare a window of the serving request log with the training data of the version that scored it (monitoring
    pipeline: per-feature drift, missing / "not measured" shares, predicted probabilities). The report is a ZenML
    artifact (`drift_report`) and in MLflow; the summary JSON carries drift_detected and retraining_recommended."""
    configure_console(verbose)
    summary = guarded(lambda: run_monitoring(stack_name, (config_path or MONITORING_CONFIG).resolve(),
                                             serving_config, hours, no_cache))
    click.echo("")
    click.secho(f"Run {summary['run_name']} on stack '{summary['stack']}': {summary['status']}", bold=True)
    click.echo(f"Compared {summary['monitoring']['rows']} patients scored by {summary['model']['name']} version "
               f"{summary['model']['version']} with its training data")
    print_drift(summary)
    write_summary(summary, summary_json)


def run_monitoring(stack_name: Optional[str], config_path: Path, serving_config: Path, hours: Optional[float],
                   no_cache: bool) -> Dict[str, Any]:
    import sqlalchemy

    from heartml.core.errors import InputError
    from heartml.platform.serving import load_serve_options
    from heartml.serving.request_log import engine_for

    parameters = load_config(config_path).get("parameters") or {}
    serving = load_serve_options(serving_config, serving_config.name)
    url = parameters.get("request_log_url") or serving.request_log.url
    if not url:
        raise InputError(f"monitor: no request log (request_log.url is null in {serving_config.name})")
    if sqlalchemy.engine.make_url(url).password:  # the URL becomes a step parameter, stored with the run
        raise InputError("monitor: the request log URL carries a password; leave it out and set the database's own "
                         "variable (PGPASSWORD for PostgreSQL) instead")
    overrides = {"request_log_url": engine_for(url, ROOT).url.render_as_string(hide_password=False),
                 "registered_model_name": parameters.get("registered_model_name") or served_model_name(serving)}
    if hours is not None:
        overrides["hours"] = hours
    active, decl = use_stack(stack_name)

    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from pipelines.monitoring import monitoring_pipeline

    configure_mlflow_from_active_stack()
    run = run_on_stack(monitoring_pipeline, config_path, overrides, no_cache, decl)
    scored_by = run.steps["request_log_window"].outputs["serving_model"][0].load()
    drift = run.steps["monitor_drift"].outputs["drift_report"][0].load()
    return {"run_name": run.name, "run_id": str(run.id), "status": str(run.status.value), "stack": active,
            "model": {"name": scored_by.name, "version": scored_by.version}, **drift_summary(drift),
            "mlflow_tracking_uri": scored_by.tracking_uri}


# ----------------------------------------------------------------------------------------------------------------
# ui


@cli.group(context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py ui start                      # ZenML dashboard :8237 and MLflow UI :5000 on 127.0.0.1
  python run.py ui stop
""")
def ui() -> None:
    """The ZenML dashboard and the MLflow UI, on 127.0.0.1 only."""


@ui.command("start", context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py ui start                      # http://127.0.0.1:8237 (ZenML) and http://127.0.0.1:5000 (MLflow)
  python run.py ui start --ports 9000 9001
""")
@click.option("--ports", type=(int, int), default=(8237, 5000), show_default=True, metavar="ZENML MLFLOW",
              help="Loopback ports of the ZenML dashboard and the MLflow UI.")
@stack_option
@fail_on_input_errors
def ui_start(ports: Tuple[int, int], stack_name: Optional[str]) -> None:
    """Start the local ZenML dashboard (`zenml login --local`) and an MLflow UI over the active stack's tracking
    store; print both URLs and return. They keep running until `python run.py ui stop`."""
    from heartml.platform import dashboard

    configure_console(verbose=False)
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
    click.echo("Stop both with:  python run.py ui stop")


@ui.command("stop", context_settings=CONTEXT)
@fail_on_input_errors
def ui_stop() -> None:
    """Stop what `ui start` started; the ZenML CLI keeps working on the local store."""
    from heartml.platform import dashboard

    stopped = dashboard.stop()
    click.echo("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


# ----------------------------------------------------------------------------------------------------------------
# stack


@cli.group(context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py stack list                    # declared stacks, registered or not, and the active one
  python run.py stack check azure             # what the azure stack still needs; registers nothing
  python run.py stack register azurite        # register and activate it (zenml stack set azurite)
  python run.py stack up team                 # start the team servers on this machine (stack down team stops them)
""")
def stack() -> None:
    """The stacks declared in configs/stacks/ (local, azurite, s3, team, azure) and the servers they run on."""


@stack.command("list", context_settings=CONTEXT)
def stack_list() -> None:
    """Each declared stack with its components, and whether it is registered and active in ZenML."""
    from heartml.platform.declarations import STACKS_DIR, load_stack_decl

    ensure_repository()
    from zenml.client import Client

    client = Client()
    registered = {s.name for s in client.list_stacks(size=100).items}
    active = client.active_stack_model.name
    for path in sorted(STACKS_DIR.glob("*.yaml")):
        decl = load_stack_decl(str(path))
        state = "active" if decl.name == active else "registered" if decl.name in registered else "not registered"
        components = ", ".join(f"{kind}={c.flavor}" for kind, c in decl.enabled_components.items())
        click.echo(f"{decl.name:<10} {state:<15} {components}")


@stack.command("register", context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py stack register local
  python run.py stack register azurite --no-activate
""")
@click.argument("name")
@click.option("--activate/--no-activate", default=True, show_default=True,
              help="Also make it your active stack (as `zenml stack set NAME`).")
@fail_on_input_errors
def stack_register(name: str, activate: bool) -> None:
    """Check configs/stacks/NAME.yaml, start its services, fill its secrets from the environment, and register it
    (idempotently: a second call changes nothing)."""
    from heartml.platform.stacks import prepare_stack

    configure_console(verbose=False)
    ensure_repository()
    prepare_stack(name, echo=click.echo, activate=activate)
    click.echo(f"stack {name!r} is registered" + (" and active" if activate else ""))


@stack.command("check", context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py stack check azure             # lists every missing setting, registers nothing
""")
@click.argument("name")
@fail_on_input_errors
def stack_check(name: str) -> None:
    """Say what NAME still needs (settings, services, credentials) without registering or starting anything."""
    from heartml.platform.stacks import stack_problems

    configure_console(verbose=False)
    ensure_repository()
    decl, problems = stack_problems(name)
    if problems:
        from heartml.platform.declarations import StackNotReadyError

        raise StackNotReadyError(decl, problems)
    click.echo(f"stack {name!r}: ready")


@stack.command("up", context_settings=CONTEXT, epilog="""\b
Examples:
  python run.py stack up team                 # MariaDB, PostgreSQL, Azurite, ZenML and MLflow servers, accounts
  set -a; . <home>/accounts/trainer.env; set +a; python run.py --stack team
""")
@click.argument("name")
@fail_on_input_errors
def stack_up(name: str) -> None:
    """Start on this machine the servers stack NAME runs on (those not running yet); they keep running."""
    from heartml.platform import azurite as azurite_service
    from heartml.platform import team
    from heartml.platform.declarations import load_stack_decl

    decl = load_stack_decl(name)
    if not decl.services:
        click.echo(f"stack {name!r} runs on nothing that needs starting")
    if "azurite" in decl.services:
        click.echo(azurite_service.ensure_running(azurite_service.from_env()))
    if "team" in decl.services and decl.servers:
        servers = team.Team(decl.servers)
        team.up(servers, echo=click.echo)
        click.echo(f"ZenML:  {servers.zenml_url}   MLflow: {servers.mlflow_url}   data and logs: {servers.home}")
        click.echo(f"as an account: set -a; . {servers.account_file('trainer')}; set +a; "
                   f"python run.py --stack {name}   (accounts: {', '.join(team.ACCOUNTS)})")


@stack.command("down", context_settings=CONTEXT)
@click.argument("name")
@fail_on_input_errors
def stack_down(name: str) -> None:
    """Stop the servers `stack up NAME` started (by the process ids it saved); their data stays."""
    from heartml.platform import azurite as azurite_service
    from heartml.platform import team
    from heartml.platform.declarations import load_stack_decl

    decl = load_stack_decl(name)
    if "team" in decl.services and decl.servers:
        team.down(team.Team(decl.servers), echo=click.echo)
    if "azurite" in decl.services:
        pid = azurite_service.stop(azurite_service.from_env())
        click.echo(f"azurite: stopped (pid {pid})" if pid else "azurite: was not running")


# ----------------------------------------------------------------------------------------------------------------
# azurite


@cli.group(context_settings=CONTEXT, short_help="Start, stop or inspect Azurite, the azurite stack's blob emulator.",
           epilog="""\b
Examples:
  python run.py azurite start                 # on 127.0.0.1:10000 unless AZURITE_BLOB_PORT says otherwise
  python run.py azurite status                # exit 1 when it does not answer
  python run.py azurite stop
""")
def azurite() -> None:
    """Azurite, the Azure Blob Storage emulator of the azurite stack (AZURITE_BLOB_PORT, AZURITE_LOCATION)."""


@azurite.command("start", context_settings=CONTEXT)
@fail_on_input_errors
def azurite_start() -> None:
    """Start Azurite unless it already runs on AZURITE_BLOB_PORT (default 10000); it keeps running afterwards."""
    from heartml.platform import azurite as service

    click.echo(service.ensure_running(service.from_env()))


@azurite.command("stop", context_settings=CONTEXT)
@fail_on_input_errors
def azurite_stop() -> None:
    """Stop the Azurite started for AZURITE_LOCATION (the process whose id it saved, checked to be Azurite)."""
    from heartml.platform import azurite as service

    instance = service.from_env()
    pid = service.stop(instance)
    click.echo(f"stopped Azurite (pid {pid})" if pid else f"no Azurite started from {instance.location} is running")


@azurite.command("status", context_settings=CONTEXT)
@fail_on_input_errors
def azurite_status() -> None:
    """Whether Azurite answers on AZURITE_BLOB_PORT, and where its data lives (exit 1 when it does not answer)."""
    from heartml.platform import azurite as service

    instance = service.from_env()
    server = service.probe(instance.host, instance.port)
    if service.is_azurite(server):
        click.echo(f"running: {server} at {instance.blob_endpoint}; data folder {instance.location}")
        return
    click.echo(f"not running at {instance.host}:{instance.port}" + (f" (port used by: {server})" if server else ""))
    sys.exit(1)


# ----------------------------------------------------------------------------------------------------------------
# Shared by the commands


def configure_console(verbose: bool) -> None:
    """Quiet by default: ZenML's terminal handler shows step progress and warnings only, MLflow its warnings."""
    if verbose:
        return
    from heartml.platform.console import MLFLOW_QUIET_LEVEL, quiet_zenml_console

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", MLFLOW_QUIET_LEVEL)  # read when mlflow is first imported
    import zenml  # noqa: F401  (installs ZenML's console handler, which the filter goes on)

    quiet_zenml_console()


def guarded(work: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run `work` with Ctrl-C / SIGTERM turned into exit 130 / 143 and one line saying what was left behind."""
    from heartml.platform.reliability import INTERRUPTED_EXIT_SECONDS, InterruptGuard, exit_within

    guard = InterruptGuard()
    try:
        with guard:
            return work()
    except (KeyboardInterrupt, Exception) as error:
        if not (guard.interrupted or isinstance(error, KeyboardInterrupt)):
            raise
        code = guard.exit_code if guard.interrupted else 130
        exit_within(INTERRUPTED_EXIT_SECONDS, code)  # the line below and Python's exit, bounded
        click.secho(interruption_line(guard.signal_name or "SIGINT"), fg="yellow", err=True)
        sys.exit(code)


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


def write_summary(summary: Dict[str, Any], path: Optional[Path]) -> None:
    if path:
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))


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
                     stack_defaults: Optional[Dict[str, Any]] = None, cached_steps: Sequence[str] = ()) -> Path:
    """The YAML run config with command-line overrides applied, in a temporary file (nothing the user owns).

    `stack_defaults` (Docker settings, step operators of the stack) fill in what the file does not say.
    `cached_steps` may be cached although their code says not (run.py checked what they depend on), unless the
    file says otherwise for one or `no_cache` is set (a step's own setting outweighs the run-level one in ZenML).
    """
    from heartml.platform.declarations import merge_defaults

    config = merge_defaults(load_config(config_path), stack_defaults or {})
    parameters = config.setdefault("parameters", {})
    parameters.update({k: v for k, v in overrides.items() if v is not None})
    for step_name, values in (step_overrides or {}).items():
        step_parameters = config.setdefault("steps", {}).setdefault(step_name, {}).setdefault("parameters", {})
        step_parameters.update({k: v for k, v in values.items() if v is not None})
    if no_cache:
        config["enable_cache"] = False
    else:
        for step_name in cached_steps:
            config.setdefault("steps", {}).setdefault(step_name, {}).setdefault("enable_cache", True)
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="run-config-", delete=False)
    with handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return Path(handle.name)


def use_stack(stack_name: Optional[str]) -> Tuple[str, Any]:
    """Check, start, register and activate the named stack if given; the active stack's name and declaration."""
    from heartml.platform.paths import local_stores_dir
    from heartml.platform.reliability import atomic_zenml_config_writes, setup_lock
    from heartml.platform.stacks import initialize_local_mlflow, prepare_stack

    atomic_zenml_config_writes()  # runs started together in one checkout each rewrite .zen/config.yaml
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

    from heartml.platform.paths import local_stores_dir
    from heartml.platform.reliability import abandon_pending_versions, close_killed_runs
    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from heartml.registry.model_versions import RegistryError

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


def run_on_stack(pipeline: Any, config_path: Path, overrides: Dict[str, Any], no_cache: bool, decl: Any) -> Any:
    """`pipeline` with the configuration file, the command line's overrides and the stack's defaults (fail_fast on
    local stacks, so a failing step's own error reaches the user); the finished run, as the store has it."""
    from zenml.client import Client

    from heartml.platform.declarations import run_settings

    run_config = effective_config(config_path, overrides, no_cache, stack_defaults=run_settings(decl) if decl else None)
    try:
        run = run_pipeline(pipeline, run_config)
    finally:
        run_config.unlink(missing_ok=True)
    return Client().get_pipeline_run(run.id)


def run_pipeline(pipeline: Any, run_config: Path) -> Any:
    """Run `pipeline` under a run name fixed now; while the in-process (local) orchestrator executes it, a marker
    held by this process lets the next run.py close the run if this process gets killed."""

    from zenml.client import Client

    from heartml.platform.paths import local_stores_dir
    from heartml.platform.reliability import concrete_run_name, run_marker

    global STARTED_RUN
    config = load_config(run_config)
    config["run_name"] = concrete_run_name(config, pipeline.name)
    run_config.write_text(yaml.safe_dump(config, sort_keys=False))
    client = Client()
    in_process = client.active_stack_model.components["orchestrator"][0].flavor_name == "local"
    marker = (run_marker(local_stores_dir(), client.zen_store.url, config["run_name"]) if in_process
              else contextlib.nullcontext())
    speedups.libraries_loaded()
    with marker:
        STARTED_RUN = config["run_name"]
        return pipeline.with_options(config_path=str(run_config))()


if __name__ == "__main__":
    speedups.loading_libraries()  # until the command's libraries are loaded (heartml/platform/speedups.py)
    cli(prog_name="python run.py")
