"""Stage 5: metrics of the selected model on the untouched test split."""

from typing import Dict

import mlflow
import pandas as pd
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.dataset import DatasetSpec
from heartml.evaluation import classification_metrics
from heartml.preprocessing import features_and_target


@step(experiment_tracker=True)
def model_evaluation(
    model: Pipeline, test_set: pd.DataFrame, dataset: DatasetSpec
) -> Annotated[Dict[str, float], "test_metrics"]:
    X_test, y_test = features_and_target(test_set, dataset)
    metrics = classification_metrics(y_test, model.predict_proba(X_test)[:, 1])
    mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
    log_metadata(metadata={"test_rows": len(test_set), **metrics}, infer_artifact=True, artifact_name="test_metrics")
    return metrics
