"""Batch inference pipeline: production model (MLflow registry) -> validated records -> predictions -> sink,
then drift of the scored records from the model's training data (and its gate)."""

from zenml import pipeline

from heartml.registry.model_versions import PRODUCTION
from steps.batch_inference import batch_predict, load_records, resolve_model, write_to_sink
from steps.monitoring import drift_gate, monitor_drift


@pipeline
def inference_pipeline(
    input_uri: str,
    output_uri: str,
    registered_model_name: str,
    model_alias: str = PRODUCTION,
    output_table: str = "predictions",
) -> None:
    serving_model = resolve_model(registered_model_name=registered_model_name, model_alias=model_alias)
    records = load_records(input_uri=input_uri, serving_model=serving_model)
    predictions = batch_predict(records=records, serving_model=serving_model)
    # Explanations plug in here: a step taking `predictions` + `serving_model` (LIME from heartml/core/explain.py).
    write_to_sink(predictions=predictions, output_uri=output_uri, output_table=output_table)
    # After the sink: predictions are delivered even when the monitoring gate fails the run.
    drift_report = monitor_drift(predictions=predictions, serving_model=serving_model, source=input_uri,
                                 after="write_to_sink")
    drift_gate(drift_report=drift_report)
