"""Stage 3: engineered features around the preprocessing transforms, as one Pipeline fitted on the training split."""

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.core.dataset import DatasetSpec
from heartml.core.features import FeatureOptions, build_feature_pipeline, describe_feature_pipeline
from heartml.core.preprocessing import features_and_target


@step
def feature_engineering(
    train_set: pd.DataFrame,
    preprocessor: ColumnTransformer,
    dataset: DatasetSpec,
    features: FeatureOptions = FeatureOptions(),
) -> Annotated[Pipeline, "feature_pipeline"]:
    """The full transform chain, fitted on training rows; model building refits clones inside CV folds."""
    feature_pipeline = build_feature_pipeline(preprocessor, features, dataset)
    X_train, y_train = features_and_target(train_set, dataset)
    feature_pipeline.fit(X_train, y_train)
    log_metadata(
        metadata={**describe_feature_pipeline(feature_pipeline), "options": features.model_dump()},
        infer_artifact=True,
        artifact_name="feature_pipeline",
    )
    return feature_pipeline
