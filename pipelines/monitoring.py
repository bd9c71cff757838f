"""Monitoring pipeline (python run.py monitor): a window of the serving request log -> drift from the training
data of the version that scored it -> gate."""

from typing import Optional

from zenml import pipeline

from steps.monitoring import drift_gate, monitor_drift, request_log_window


@pipeline
def monitoring_pipeline(
    request_log_url: str,
    registered_model_name: str,
    hours: float = 24,
    table: str = "scored_requests",
    model_version: Optional[str] = None,
) -> None:
    predictions, serving_model = request_log_window(
        request_log_url=request_log_url, registered_model_name=registered_model_name, hours=hours, table=table,
        model_version=model_version)
    drift_report = monitor_drift(predictions=predictions, serving_model=serving_model,
                                 source=f"request log, last {hours:g} h")
    drift_gate(drift_report=drift_report)
