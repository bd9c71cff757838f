"""Stage 4: tune every candidate family inside stratified CV on the training split, compare, keep the best.

The feature transforms arrive unfitted; here they are fitted, inside every CV fold and then on the whole
training split, as the first part of each candidate model."""

from typing import Dict, Tuple

import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import get_step_context, log_metadata, step

from heartml.core.dataset import DatasetSpec
from heartml.core.features import describe_feature_pipeline, outliers_seen
from heartml.core.preprocessing import features_and_target
from heartml.core.selection import ModelingOptions, select_model
from heartml.platform.tuning_workers import shared_study_of_step
from heartml.platform.zenml_registry import production_parameters
from heartml.reports.tracking import log_selection, log_tuning
from materializers import ContentHashedPandasMaterializer, ModelComparisonMaterializer


@step(experiment_tracker=True, output_materializers={"model_comparison": ModelComparisonMaterializer,
                                                    "cv_predictions": ContentHashedPandasMaterializer})
def model_building(
    train_set: pd.DataFrame,
    feature_pipeline: Pipeline,
    dataset: DatasetSpec,
    seed: int,
    modeling: ModelingOptions = ModelingOptions(),
) -> Tuple[
    Annotated[Pipeline, "model"],
    Annotated[pd.DataFrame, "model_comparison"],
    Annotated[Dict[str, Pipeline], "candidate_models"],
    Annotated[pd.DataFrame, "cv_predictions"],
]:
    """`model`: the selected candidate fitted on the whole training split (raw records in). `candidate_models`:
    every candidate, fitted the same way. `cv_predictions`: their out-of-fold probabilities on the same folds, and
    (column `selected`) those of `model` as registered, calibrated when calibration was kept."""
    modeling = dataset.step_options("model_building", "modeling", modeling).model_copy(update={"seed": seed})
    X_train, y_train = features_and_target(train_set, dataset)
    warm_version, warm_start = None, {}
    if modeling.tuning and modeling.tuning.warm_start:
        warm_version, production = production_parameters(MlflowClient(), get_step_context().model.name, dataset.name)
        warm_start = {family: [params] for family, params in production.items()}
    selection = select_model(X_train, y_train, feature_pipeline, modeling,
                             on_family_done=lambda candidate: log_tuning(candidate, modeling.scoring),
                             warm_start=warm_start, shared=shared_study_of_step(modeling, dataset))
    comparison = selection.comparison()
    settings = modeling.search_settings()
    log_selection(comparison, selection.selected, modeling.scoring, settings)

    best = selection.candidates[selection.selected]
    fitted_features = selection.model.named_steps["features"]
    outliers = outliers_seen(fitted_features, X_train)
    log_metadata(
        metadata={"family": best.name, "scoring": modeling.scoring, f"cv_{modeling.scoring}_mean": best.cv.mean,
                  f"cv_{modeling.scoring}_std": best.cv.std, "cv_folds": modeling.cv_folds,
                  "train_score": best.train_score, "params": _printable(best.params), **settings,
                  "warm_start_from_version": warm_version or "none",
                  "calibration": {"method": selection.calibration.method,
                                  "cv_brier_uncalibrated": selection.calibration.cv_brier_uncalibrated,
                                  **{f"cv_brier_{m}": v for m, v in selection.calibration.cv_brier.items()}},
                  # What the transforms learned from the training split, fitted once here (none were before).
                  "features": describe_feature_pipeline(fitted_features),
                  **({"outliers": outliers} if outliers else {})},
        infer_artifact=True,
        artifact_name="model",
    )
    log_metadata(
        metadata={"selected": selection.selected,
                  "cv_mean": {c.name: c.cv.mean for c in selection.candidates.values()},
                  "cv_std": {c.name: c.cv.std for c in selection.candidates.values()},
                  "best_params": {c.name: _printable(c.params) for c in selection.candidates.values()},
                  # A search cut short by its timeout makes the result depend on machine speed.
                  "stopped_by_timeout": [c.name for c in selection.candidates.values()
                                         if c.tuning and c.tuning.stopped_by_timeout]},
        infer_artifact=True,
        artifact_name="model_comparison",
    )
    return selection.model, comparison, selection.models, selection.cv_predictions(y_train)


def _printable(params: Dict) -> Dict:
    """Metadata values must be JSON scalars or containers of them; None and nested dicts stay as text."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
