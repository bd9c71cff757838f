"""Batch inference steps: resolve the serving model, read and validate records, predict, write to the sink."""

import time

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from typing_extensions import Annotated
from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from heartml.core.sinks import SinkReport, parse_sink, write_predictions
from heartml.core.sources import read_source
from heartml.registry.model_versions import PRODUCTION, load_scoring_model
from heartml.registry.serving import ServingModel, predict_records, resolve_serving_model, validate_records
from materializers import ContentHashedPandasMaterializer

logger = get_logger(__name__)


# Never cached: the alias may have moved since the last run.
@step(experiment_tracker=True, enable_cache=False)
def resolve_model(
    registered_model_name: str, model_alias: str = PRODUCTION
) -> Annotated[ServingModel, "serving_model"]:
    """The complete version behind the alias (MLflow registry), with its threshold and training schema."""
    serving = resolve_serving_model(MlflowClient(), registered_model_name, model_alias)
    mlflow.set_tags({"model_name": serving.name, "model_version": serving.version, "model_alias": model_alias})
    log_metadata(metadata={"model_name": serving.name, "model_version": serving.version, "alias": model_alias,
                           "model_uri": serving.uri}, infer_artifact=True, artifact_name="serving_model")
    return serving


# Never cached: the file behind the URI may have changed.
@step(enable_cache=False, output_materializers={"records": ContentHashedPandasMaterializer})
def load_records(input_uri: str, serving_model: ServingModel) -> Annotated[pd.DataFrame, "records"]:
    """The records as read, once they passed the model's training schema (target not required)."""
    records = read_source(input_uri, serving_model.dataset.read_options)
    validate_records(records, serving_model.dataset, input_uri)
    log_metadata(metadata={"source": input_uri, "rows": len(records)}, infer_artifact=True, artifact_name="records")
    return records


@step(experiment_tracker=True, enable_cache=False)
def batch_predict(records: pd.DataFrame, serving_model: ServingModel) -> Annotated[pd.DataFrame, "predictions"]:
    model = load_scoring_model(serving_model.uri)
    run_name = get_step_context().pipeline_run.name
    started = time.perf_counter()
    predictions = predict_records(records, model, serving_model, source="records", pipeline_run=run_name)
    logger.info("Scored %d records with %s version %s in %.1f s", len(predictions), serving_model.name,
                serving_model.version, time.perf_counter() - started)
    summary = {"rows": len(predictions), "predicted_positive": int(predictions["predicted_class"].sum()),
               "mean_probability": float(predictions["probability"].mean())}
    mlflow.log_metrics(summary)
    log_metadata(metadata={**summary, "model_version": serving_model.version}, infer_artifact=True,
                 artifact_name="predictions")
    return predictions


# Never cached: writing is the point.
@step(enable_cache=False)
def write_to_sink(predictions: pd.DataFrame, output_uri: str, output_table: str = "predictions") -> Annotated[
    SinkReport, "sink_report"
]:
    report = write_predictions(predictions, parse_sink(output_uri, output_table))
    log_metadata(metadata=report.model_dump(), infer_artifact=True, artifact_name="sink_report")
    return report
