"""Stage 6: register the trained pipeline as a new MLflow model version, tagged with its provenance."""

from typing import Dict

import pandas as pd
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import get_step_context, log_metadata, step

from heartml.dataset import DatasetSpec
from heartml.preprocessing import features_and_target
from heartml.registry import RegisteredVersion, register_model_version
from heartml.versioning import DataVersion


# Never cached: every training run registers its own model version.
@step(experiment_tracker=True, enable_cache=False)
def register_model(
    model: Pipeline,
    test_metrics: Dict[str, float],
    data_version: DataVersion,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    registered_model_name: str = "heart_failure_classifier",
) -> Annotated[RegisteredVersion, "registered_model"]:
    context = get_step_context()
    X_test, _ = features_and_target(test_set, dataset)
    tags = {
        **{f"metric.{name}": f"{value:.6f}" for name, value in test_metrics.items()},
        "data_hash": data_version.data_hash,
        "data_source": data_version.source,
        "dataset": data_version.dataset,
        "zenml_pipeline_run_id": str(context.pipeline_run.id),
        "zenml_pipeline_run_name": context.pipeline_run.name,
        "classifier": type(model.named_steps["classifier"]).__name__,
    }
    registered = register_model_version(model, X_test.head(5), registered_model_name, tags)
    log_metadata(metadata=registered.model_dump(), infer_artifact=True, artifact_name="registered_model")
    return registered
