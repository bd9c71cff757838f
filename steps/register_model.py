"""Stage 6: register the trained pipeline as a new MLflow model version with its provenance.

The version is created `pending`; `promote_model` marks it complete once this step's outputs, including the model
files copied into the ZenML artifact store, are saved.
"""

import atexit
import shutil
import tempfile
from datetime import timezone
from pathlib import Path
from typing import Dict, Optional, Tuple

import pandas as pd
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import ArtifactConfig, get_step_context, log_metadata, step
from zenml.enums import ArtifactType

from heartml.dataset import DatasetSpec
from heartml.preprocessing import features_and_target
from heartml.registry import (
    RegisteredVersion,
    download_model_files,
    provenance_tags,
    register_model_version,
    source_commit,
)
from heartml.versioning import DataVersion


# Never cached: every training run registers its own model version.
@step(experiment_tracker=True, enable_cache=False)
def register_model(
    model: Pipeline,
    test_metrics: Dict[str, float],
    data_version: DataVersion,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    # The threshold that turns probabilities into classes; travels with the version as a tag. A step input, so
    # an evaluated threshold (an artifact of model evaluation) can be wired in place of this configured value.
    decision_threshold: float = 0.5,
    registered_model_name: Optional[str] = None,  # None: the ZenML model's name (configs: model.name)
    git_commit: Optional[str] = None,  # set by run.py from the checkout that submitted the run
) -> Tuple[
    Annotated[RegisteredVersion, "registered_model"],
    Annotated[Path, ArtifactConfig(name="mlflow_model", artifact_type=ArtifactType.MODEL)],
]:
    context = get_step_context()
    zenml_model = context.model
    name = registered_model_name or zenml_model.name
    run = context.pipeline_run
    tags = provenance_tags(
        test_metrics,
        model.named_steps["classifier"],
        data_version,
        training_date=(run.start_time or run.created).replace(tzinfo=timezone.utc).isoformat(timespec="seconds"),
        git_commit=git_commit or source_commit(Path(__file__).parent),
        zenml={"zenml_pipeline_run_id": str(run.id), "zenml_pipeline_run_name": run.name,
               "zenml_model_name": zenml_model.name, "zenml_model_version": str(zenml_model.number),
               "zenml_model_version_id": str(zenml_model.id)},
    )
    X_test, _ = features_and_target(test_set, dataset)
    registered = register_model_version(model, dataset, X_test.head(5), name, tags, decision_threshold)
    # The same files in the stack's artifact store (local folder or az://), kept until ZenML has stored them.
    files = Path(tempfile.mkdtemp(prefix="mlflow-model-"))
    atexit.register(shutil.rmtree, files, ignore_errors=True)
    download_model_files(registered.model_uri, files)
    log_metadata(metadata=registered.model_dump(), infer_artifact=True, artifact_name="registered_model")
    log_metadata(metadata={"mlflow_model_uri": registered.model_uri, "mlflow_registered_model": name,
                           "mlflow_version": registered.version, "decision_threshold": decision_threshold},
                 infer_model=True)
    return registered, files
