"""Batch inference: the training schema without the target, predictions at the model's threshold, labelled."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from heartml.core.errors import DataValidationError
from heartml.core.preprocessing import features_and_target
from heartml.core.sources import read_source
from heartml.core.versioning import row_hashes
from heartml.registry.model_versions import (
    PRODUCTION,
    RegistryError,
    load_scoring_model,
    mark_complete,
    register_model_version,
)
from heartml.registry.serving import PREDICTION_COLUMNS, predict_records, resolve_serving_model, validate_records


@pytest.fixture
def records(heart_spec) -> pd.DataFrame:
    """Incoming patients: no target, an identifier the output must keep."""
    frame = read_source("bundled://heart").drop(columns=[heart_spec.target.column]).head(12)
    return frame.assign(patient_id=[f"P{i:03d}" for i in range(len(frame))])


@pytest.fixture(scope="module")
def serving(mlflow_store, strong_and_weak_models, heart_splits, heart_spec):
    strong, _ = strong_and_weak_models
    example = features_and_target(heart_splits[1], heart_spec)[0].head(5)
    with mlflow.start_run():
        version = register_model_version(strong, heart_spec, example, "unit_inference", {}, decision_threshold=0.3,
                                         training_rows=row_hashes(heart_splits[0], heart_spec.model_features))
    client = MlflowClient()
    mark_complete(client, version.name, version.version)
    client.set_registered_model_alias(version.name, PRODUCTION, version.version)
    return resolve_serving_model(client, version.name)


def test_records_need_no_target_and_may_lack_a_measurement(records, heart_spec):
    one = records.head(1).assign(Cholesterol=np.nan)  # a single patient, cholesterol not measured
    validated = validate_records(one, heart_spec, "one.csv")
    assert validated["Age"].dtype == float and validated["patient_id"].iloc[0] == "P000"


def test_bad_records_fail_with_one_line_per_problem(records, heart_spec):
    bad = records.drop(columns=["MaxHR"])
    bad.loc[2, "Sex"] = "X"
    bad.loc[[4, 5], "Age"] = [-1, 300]
    with pytest.raises(DataValidationError) as error:
        validate_records(bad, heart_spec, "in.csv")
    assert sorted(error.value.lines) == sorted([
        "in.csv: column 'MaxHR': rule 'required column' failed: the column is missing",
        "in.csv: column 'Sex': rule 'one of [M, F]' failed for 1 row (e.g. 'X')",
        "in.csv: column 'Age': rule 'range [1, 120]' failed for 2 rows (e.g. -1, 300)",
    ])
    with pytest.raises(DataValidationError, match="no rows to score"):
        validate_records(records.head(0), heart_spec, "empty.csv")


def test_serving_model_carries_version_threshold_and_training_schema(serving, heart_spec):
    assert (serving.name, serving.alias, serving.decision_threshold) == ("unit_inference", PRODUCTION, 0.3)
    assert serving.uri == f"models:/unit_inference/{serving.version}"
    assert serving.dataset == heart_spec


def test_predictions_keep_the_input_and_say_which_model(serving, records, strong_and_weak_models, heart_spec):
    strong, _ = strong_and_weak_models
    out = predict_records(records, load_scoring_model(serving.uri), serving, "in.csv", pipeline_run="run-9")
    assert list(out.columns) == list(records.columns) + list(PREDICTION_COLUMNS)
    pd.testing.assert_frame_equal(out[records.columns], records)  # input values as given (ints stay ints)
    from heartml.core.preprocessing import clean_records

    expected = strong.predict_proba(clean_records(records, heart_spec))[:, 1]
    assert np.allclose(out["probability"], expected)
    assert (out["predicted_class"] == (expected >= 0.3)).all()
    assert 0 < out["predicted_class"].sum() < len(out)
    assert set(out["model_version"]) == {serving.version} and set(out["pipeline_run"]) == {"run-9"}


def test_an_input_column_named_like_an_output_column_is_refused(serving, records):
    with pytest.raises(DataValidationError, match="column 'probability': rule 'not an output column'"):
        predict_records(records.assign(probability=1.0), load_scoring_model(serving.uri), serving, "in.csv")


def test_no_production_model_is_a_registry_error(mlflow_store):
    with pytest.raises(RegistryError, match="no 'production' version of model 'unit_nothing'"):
        resolve_serving_model(MlflowClient(), "unit_nothing")
