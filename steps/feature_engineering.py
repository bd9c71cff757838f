"""Stage 3: engineered features around the preprocessing transforms, as one unfitted sklearn Pipeline
(age bands -> grouped aggregates -> preprocessing -> polynomial -> selection -> PCA); model building fits it."""

from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.core.dataset import DatasetSpec
from heartml.core.features import FeatureOptions, build_feature_pipeline


@step
def feature_engineering(
    preprocessing: ColumnTransformer,
    dataset: DatasetSpec,
    seed: int,
    features: FeatureOptions = FeatureOptions(),
) -> Annotated[Pipeline, "feature_pipeline"]:
    """The whole transform chain, unfitted: model building fits it inside every CV fold and on the training split."""
    features = dataset.step_options("feature_engineering", "features", features).model_copy(update={"seed": seed})
    feature_pipeline = build_feature_pipeline(preprocessing, features, dataset)
    log_metadata(metadata={"fitted": False, "steps": [name for name, _ in feature_pipeline.steps],
                           "options": features.model_dump()},
                 infer_artifact=True, artifact_name="feature_pipeline")
    return feature_pipeline
