"""Stage 4: cross-validate every candidate family on the training split, keep the best, fit it."""

import time
from typing import Tuple

import mlflow
import pandas as pd
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.dataset import DatasetSpec
from heartml.modeling import ModelingOptions, assemble_model, cross_validate, make_estimator
from heartml.preprocessing import features_and_target


@step(experiment_tracker=True)
def model_building(
    train_set: pd.DataFrame,
    feature_pipeline: Pipeline,
    dataset: DatasetSpec,
    modeling: ModelingOptions = ModelingOptions(),
) -> Tuple[Annotated[Pipeline, "model"], Annotated[pd.DataFrame, "model_comparison"]]:
    X_train, y_train = features_and_target(train_set, dataset)
    rows, candidates = [], {}
    for family in modeling.families:
        params = modeling.params.get(family, {})
        candidate = assemble_model(feature_pipeline, make_estimator(family, params, modeling.seed, modeling.n_jobs))
        started = time.perf_counter()
        scores = cross_validate(candidate, X_train, y_train, modeling.cv_folds, modeling.scoring, modeling.seed)
        candidate.fit(X_train, y_train)
        rows.append({"family": family, "cv_mean": scores.mean(), "cv_std": scores.std(),
                     "fit_seconds": time.perf_counter() - started})
        candidates[family] = candidate
        mlflow.log_params({f"{family}.{k}": v for k, v in candidate.named_steps["classifier"].get_params().items()
                           if isinstance(v, (int, float, str, bool))})
        mlflow.log_metrics({f"cv_{modeling.scoring}_mean.{family}": scores.mean(),
                            f"cv_{modeling.scoring}_std.{family}": scores.std()})
    comparison = pd.DataFrame(rows).sort_values("cv_mean", ascending=False).reset_index(drop=True)
    best = comparison.loc[0, "family"]
    mlflow.log_param("selected_family", best)
    log_metadata(
        metadata={"family": best, f"cv_{modeling.scoring}_mean": float(comparison.loc[0, "cv_mean"]),
                  f"cv_{modeling.scoring}_std": float(comparison.loc[0, "cv_std"]), "cv_folds": modeling.cv_folds,
                  "params": {k: str(v) for k, v in modeling.params.get(best, {}).items()}},
        infer_artifact=True,
        artifact_name="model",
    )
    return candidates[best], comparison
