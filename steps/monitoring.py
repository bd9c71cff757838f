"""Monitoring steps: a window of the serving request log, drift of scored records from the training data of the
model that scored them, and its gate."""

from datetime import datetime, timedelta, timezone
from typing import Optional, Tuple

import mlflow
import pandas as pd
import sqlalchemy
from mlflow.tracking import MlflowClient
from typing_extensions import Annotated
from zenml import log_metadata, step
from zenml.logger import get_logger

from heartml.core.errors import InputError
from heartml.core.sources import display_uri
from heartml.monitoring.drift import DriftReport, MonitoringOptions, scored_drift
from heartml.registry.model_versions import complete_version, training_reference
from heartml.registry.serving import ServingModel, serving_model_of
from heartml.reports.pages import drift_html
from heartml.serving.request_log import read_window
from materializers import DriftReportMaterializer

logger = get_logger(__name__)

MLFLOW_DRIFT_PATH = "monitoring/drift.html"


class DriftGateError(InputError):
    """Drift was detected and the monitoring gate is `fail`."""


# Never cached: the log grows.
@step(enable_cache=False)
def request_log_window(
    request_log_url: str,
    registered_model_name: str,
    hours: float = 24,
    table: str = "scored_requests",
    model_version: Optional[str] = None,
) -> Tuple[Annotated[pd.DataFrame, "predictions"], Annotated[ServingModel, "serving_model"]]:
    """The patients scored in the last `hours` by one version (`model_version`, default: the latest one seen in
    the window), as the batch-inference predictions look: input columns plus `probability`."""
    until = datetime.now(timezone.utc)
    since = until - timedelta(hours=hours)
    log = read_window(sqlalchemy.create_engine(request_log_url), table, since, until, registered_model_name)
    if log.empty:
        raise InputError(f"request log {display_uri(request_log_url)}: no patients scored by {registered_model_name!r} "
                         f"in the last {hours:g} h")
    version = model_version or str(log["model_version"].iloc[-1])
    scored = log[log["model_version"] == version].reset_index(drop=True)
    if scored.empty:
        raise InputError(f"request log {display_uri(request_log_url)}: version {version} scored no patient in the "
                         f"last {hours:g} h (versions seen: {', '.join(sorted(set(log['model_version'])))})")
    client = MlflowClient()
    serving = serving_model_of(client, complete_version(client, registered_model_name, version))
    log_metadata(metadata={"rows": len(scored), "model_version": version, "since": since.isoformat(),
                           "until": until.isoformat()}, infer_artifact=True, artifact_name="predictions")
    logger.info("Request log: %d patients scored by version %s between %s and %s UTC", len(scored), version,
                f"{since:%Y-%m-%d %H:%M}", f"{until:%Y-%m-%d %H:%M}")
    return scored, serving


# Never cached: it reports on this run's scored records.
@step(experiment_tracker=True, enable_cache=False, output_materializers={"drift_report": DriftReportMaterializer})
def monitor_drift(
    predictions: pd.DataFrame,
    serving_model: ServingModel,
    source: str,
    monitoring: MonitoringOptions = MonitoringOptions(),
) -> Annotated[DriftReport, "drift_report"]:
    """Scored records against the training reference of the version that scored them (its MLflow run)."""
    reference = training_reference(MlflowClient(), serving_model.name, serving_model.version)
    if reference is None:
        raise InputError(f"model {serving_model.name!r} version {serving_model.version} carries no drift reference "
                         f"(registered before monitoring existed); train and promote a newer version")
    report = scored_drift(predictions, reference, serving_model.dataset, monitoring, model_name=serving_model.name,
                          model_version=serving_model.version, source=source)
    log_drift(report)
    log_metadata(metadata=report.summary(), infer_artifact=True, artifact_name="drift_report")
    (logger.warning if report.drift_detected else logger.info)("Drift: %s", report.verdict)
    return report


def log_drift(report: DriftReport) -> None:
    """The verdict as MLflow metrics and tags, the report as HTML and JSON artifacts of the active run."""
    mlflow.log_metrics({"drift_detected": int(report.drift_detected),
                        "retraining_recommended": int(report.retraining_recommended),
                        "drifted_tests": len(report.drifted), "drift_tests": len(report.tests)})
    mlflow.set_tags({"drift.verdict": report.verdict[:5000], "drift.model_version": report.model_version})
    mlflow.log_text(drift_html(report), MLFLOW_DRIFT_PATH)
    mlflow.log_text(report.model_dump_json(indent=2), MLFLOW_DRIFT_PATH.replace(".html", ".json"))


@step(enable_cache=False)
def drift_gate(drift_report: DriftReport) -> None:
    """Fails the run when drift was detected and the gate is `fail` (the report is saved first)."""
    if drift_report.drift_detected and drift_report.gate == "fail":
        raise DriftGateError(f"drift gate: {drift_report.verdict}")
