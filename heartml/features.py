"""Feature engineering on top of the preprocessing transforms, as one unfitted sklearn Pipeline."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures


class FeatureOptions(BaseModel):
    interactions: bool = False  # pairwise products of the preprocessed columns
    pca_components: Optional[int] = None


def build_feature_pipeline(preprocessor: ColumnTransformer, options: FeatureOptions) -> Pipeline:
    """Preprocessing first, then the engineered features; unfitted, so CV can refit it inside each fold."""
    steps = [("preprocess", clone(preprocessor))]
    if options.interactions:
        steps.append(("interactions", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
                      .set_output(transform="pandas")))
    if options.pca_components:
        steps.append(("pca", PCA(n_components=options.pca_components).set_output(transform="pandas")))
    return Pipeline(steps)
