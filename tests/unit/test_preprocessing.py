import numpy as np
import pandas as pd

from heartml.preprocessing import (
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    split_frame,
)


def test_domain_zeros_become_missing_and_are_counted(heart_raw, heart_spec):
    cleaned, report = clean_frame(heart_raw, heart_spec)
    assert report.domain_missing == {"RestingBP": 1, "Cholesterol": 172}
    assert cleaned["Cholesterol"].isna().sum() == 172
    assert (cleaned["Cholesterol"] == 0).sum() == 0


def test_duplicates_are_dropped_and_counted(heart_raw, heart_spec):
    doubled = pd.concat([heart_raw, heart_raw.head(7)], ignore_index=True)
    cleaned, report = clean_frame(doubled, heart_spec)
    assert (report.rows_in, report.duplicates_dropped, report.rows_out) == (925, 7, 918)
    assert len(cleaned) == 918


def test_split_is_stratified_disjoint_and_seeded(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    options = SplitOptions(test_size=0.2, validation_size=0.1, seed=7)
    train, validation, test = split_frame(cleaned, heart_spec, options)
    assert len(train) + len(validation) + len(test) == 918
    assert len(test) == 184 and len(validation) == 92
    overall = cleaned["HeartDisease"].mean()
    for part in (train, validation, test):
        assert abs(part["HeartDisease"].mean() - overall) < 0.02
    again = split_frame(cleaned, heart_spec, options)
    pd.testing.assert_frame_equal(test, again[2])


def test_preprocessor_learns_from_training_rows_only(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    train, _, test = split_frame(cleaned, heart_spec, SplitOptions())
    X_train, _ = features_and_target(train, heart_spec)
    preprocessor = build_preprocessor(PreprocessingOptions()).fit(X_train)
    numeric = preprocessor.named_transformers_["numeric"]
    imputer = numeric.named_steps["impute"]
    columns = list(imputer.feature_names_in_)
    assert imputer.statistics_[columns.index("Cholesterol")] == X_train["Cholesterol"].median()
    transformed = preprocessor.transform(features_and_target(test, heart_spec)[0])
    assert not transformed.isna().any().any()
    assert "missingindicator_Cholesterol" in transformed.columns
    scaled = preprocessor.transform(X_train)["Age"]
    assert abs(scaled.mean()) < 1e-9 and np.isclose(scaled.std(ddof=0), 1.0)
