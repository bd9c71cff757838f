import os
from datetime import datetime
from uuid import uuid4

import pandas as pd
import pytest

from heartml.core.dataset import load_dataset_spec
from heartml.core.sources import read_source
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def heart_spec():
    return load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")


@pytest.fixture
def heart_raw(heart_spec) -> pd.DataFrame:
    return read_source("bundled://heart", heart_spec.read_options)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """A real MLflow tracking + registry store (SQLite) with its artifacts in a temp dir, as the tracking URI."""
    import mlflow

    base = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{base}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("unit-tests", artifact_location=(base / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def heart_splits(heart_spec):
    """Cleaned train and test splits of the bundled data, as the pipeline makes them."""
    from heartml.core.preprocessing import SplitOptions, clean_frame, split_frame

    cleaned, _ = clean_frame(read_source("bundled://heart", heart_spec.read_options), heart_spec)
    train, test = split_frame(cleaned, heart_spec, SplitOptions())
    return train, test


def default_feature_pipeline():
    """The default preprocessing + feature pipeline, unfitted."""
    from heartml.core.features import FeatureOptions, build_feature_pipeline
    from heartml.core.preprocessing import PreprocessingOptions, build_preprocessor

    return build_feature_pipeline(build_preprocessor(PreprocessingOptions()), FeatureOptions())


def fit_model(family: str, params: dict, train: pd.DataFrame, spec):
    """A fitted pipeline (features -> classifier) as model building makes one."""
    from heartml.core.modeling import assemble_model, make_estimator
    from heartml.core.preprocessing import features_and_target

    model = assemble_model(default_feature_pipeline(), make_estimator(family, params, seed=42))
    return model.fit(*features_and_target(train, spec))


@pytest.fixture(scope="session")
def strong_and_weak_models(heart_splits, heart_spec):
    """A real model (logistic regression) and a deliberately weak one (one depth-1 tree: a single split)."""
    train, _ = heart_splits
    return (fit_model("logistic_regression", {}, train, heart_spec),
            fit_model("xgboost", {"n_estimators": 1, "max_depth": 1}, train, heart_spec))


@pytest.fixture(scope="session")
def heart_split(heart_splits, heart_spec):
    """((X_train, y_train), (X_test, y_test)) of the default cleaning and split, as the pipeline makes them."""
    from heartml.core.preprocessing import features_and_target

    train, test = heart_splits
    return features_and_target(train, heart_spec), features_and_target(test, heart_spec)


@pytest.fixture(scope="session")
def default_features():
    return default_feature_pipeline()


@pytest.fixture
def artifact_store(tmp_path, monkeypatch):
    """A ZenML local artifact store in a temp dir, for materializer tests."""
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path / "zenml"))  # nothing touches the developer's ZenML
    from zenml.artifact_stores.local_artifact_store import LocalArtifactStore, LocalArtifactStoreConfig
    from zenml.enums import StackComponentType

    now = datetime.now()
    return LocalArtifactStore(name="test", id=uuid4(), config=LocalArtifactStoreConfig(path=str(tmp_path / "store")),
                              flavor="local", type=StackComponentType.ARTIFACT_STORE, user=None, created=now,
                              updated=now)


@pytest.fixture
def source_root_is_the_checkout():
    """ZenML resolves steps and gathers requirements relative to the source root, which it otherwise infers from the
    main module's file (run.py in a run; none in a pytest-xdist worker)."""
    from zenml.constants import ENV_ZENML_CUSTOM_SOURCE_ROOT
    from zenml.utils import source_utils

    source_utils.set_custom_source_root(str(ROOT))
    yield
    source_utils.set_custom_source_root(os.environ.get(ENV_ZENML_CUSTOM_SOURCE_ROOT))
