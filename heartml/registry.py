"""MLflow model registry: log the whole sklearn Pipeline, register a version, tag it."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from pydantic import BaseModel
from sklearn.pipeline import Pipeline


class RegisteredVersion(BaseModel):
    name: str
    version: str
    model_uri: str
    run_id: Optional[str] = None
    tracking_uri: str


def register_model_version(
    model: Pipeline,
    input_example: pd.DataFrame,
    name: str,
    tags: Dict[str, str],
    description: str = "",
) -> RegisteredVersion:
    """Log the model in the active MLflow run and register it as a new version of `name`."""
    signature = infer_signature(input_example, model.predict_proba(input_example)[:, 1])
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=input_example,
        registered_model_name=name,
        # The pinned requirements of this repository, not pip-freeze guesses.
        pip_requirements=_model_requirements(),
        code_paths=[str(Path(__file__).parent)],  # custom transformers load without this checkout
        # skops would need every estimator type whitelisted at save and load; this registry only holds
        # models this pipeline trained, so cloudpickle (with the code shipped above) is the trusted path.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    if description:
        client.update_model_version(name, version, description=description)
    return RegisteredVersion(
        name=name, version=version, model_uri=f"models:/{name}/{version}",
        run_id=info.run_id, tracking_uri=mlflow.get_tracking_uri(),
    )


def _model_requirements() -> list:
    import sklearn
    import xgboost

    return [f"scikit-learn=={sklearn.__version__}", f"xgboost=={xgboost.__version__}", f"pandas=={pd.__version__}",
            f"mlflow=={mlflow.__version__}"]
