import pandas as pd
import pytest

from heartml.dataset import load_dataset_spec
from heartml.sources import read_source
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def heart_spec():
    return load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")


@pytest.fixture
def heart_raw(heart_spec) -> pd.DataFrame:
    return read_source("bundled://heart", heart_spec.read_options)


@pytest.fixture(scope="session")
def heart_split(heart_spec):
    """((X_train, y_train), (X_test, y_test)) of the default cleaning and split, as the pipeline makes them."""
    from heartml.preprocessing import SplitOptions, clean_frame, features_and_target, split_frame

    cleaned, _ = clean_frame(read_source("bundled://heart", heart_spec.read_options), heart_spec)
    train, _, test = split_frame(cleaned, heart_spec, SplitOptions())
    return features_and_target(train, heart_spec), features_and_target(test, heart_spec)


@pytest.fixture(scope="session")
def default_features():
    """The default preprocessing + feature pipeline, unfitted."""
    from heartml.features import FeatureOptions, build_feature_pipeline
    from heartml.preprocessing import PreprocessingOptions, build_preprocessor

    return build_feature_pipeline(build_preprocessor(PreprocessingOptions()), FeatureOptions())
