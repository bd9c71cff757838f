import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder

from heartml.core.preprocessing import (
    CleaningOptions,
    OutlierOptions,
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    clean_records,
    features_and_target,
    observed_median,
    outlier_report,
    split_frame,
)
from heartml.core.transforms import FastOneHotEncoder, OutlierHandler


@pytest.fixture
def split(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    train, test = split_frame(cleaned, heart_spec, SplitOptions())
    return features_and_target(train, heart_spec)[0], features_and_target(test, heart_spec)[0]


def test_domain_zeros_become_missing_and_are_counted(heart_raw, heart_spec):
    cleaned, report = clean_frame(heart_raw, heart_spec)
    assert report.domain_missing == {"RestingBP": 1, "Cholesterol": 172}
    assert cleaned["Cholesterol"].isna().sum() == 172
    assert (cleaned["Cholesterol"] == 0).sum() == 0


def test_dtype_conversions_and_target_are_counted(heart_raw, heart_spec):
    raw = heart_raw.astype({"MaxHR": object})
    raw.loc[[4, 6], "MaxHR"] = ["fast", "?"]
    cleaned, report = clean_frame(raw, heart_spec)
    assert report.dtype_conversions == {"Age": "int64 -> float64", "RestingBP": "int64 -> float64",
                                        "Cholesterol": "int64 -> float64", "FastingBS": "int64 -> float64",
                                        "MaxHR": "object -> float64"}
    assert report.unparseable_to_missing == {"MaxHR": 2}
    assert report.target_counts == {"0": 410, "1": 508}
    assert cleaned["HeartDisease"].dtype == np.int8 and set(cleaned["HeartDisease"]) == {0, 1}
    assert cleaned["Sex"].dtype == object


def test_string_labels_become_0_1_by_the_positive_label(heart_raw, heart_spec):
    spec = heart_spec.model_copy(deep=True)
    spec.target.positive, spec.target.negative = "disease", "healthy"
    raw = heart_raw.assign(HeartDisease=heart_raw["HeartDisease"].map({1: "disease", 0: "healthy"}))
    cleaned, report = clean_frame(raw, spec)
    assert cleaned["HeartDisease"].sum() == 508 and report.target_counts == {"0": 410, "1": 508}


def test_excluded_columns_are_dropped_and_named(heart_raw, heart_spec):
    spec = heart_spec.model_copy(update={"exclude": ["RestingECG"]})
    cleaned, report = clean_frame(heart_raw.assign(patient_id=range(918)), spec)
    assert "RestingECG" not in cleaned and "patient_id" not in cleaned
    assert report.excluded_columns == ["RestingECG", "patient_id"]


def test_duplicates_are_dropped_and_counted_unless_switched_off(heart_raw, heart_spec):
    doubled = pd.concat([heart_raw, heart_raw.head(7)], ignore_index=True)
    cleaned, report = clean_frame(doubled, heart_spec)
    assert (report.rows_in, report.duplicates_dropped, report.rows_out) == (925, 7, 918)
    assert len(cleaned) == 918 and cleaned.index.equals(pd.RangeIndex(918))  # numbered anew
    kept, report = clean_frame(doubled, heart_spec, CleaningOptions(drop_duplicates=False))
    assert len(kept) == 925 and report.duplicates_dropped == 0


@pytest.mark.parametrize("extra_column", [False, True])
def test_cleaning_leaves_its_input_as_it_was(heart_raw, heart_spec, extra_column):
    raw = heart_raw.assign(note="free text") if extra_column else heart_raw.copy()
    raw.loc[:3, "Cholesterol"] = 0  # a missing marker each cleaning turns into NaN in its own frame
    before = raw.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "copy of a slice" warning either
        cleaned, _ = clean_frame(raw, heart_spec)
        records = clean_records(raw, heart_spec)
    pd.testing.assert_frame_equal(raw, before)
    assert cleaned["Cholesterol"].head(4).isna().all() and records["Cholesterol"].head(4).isna().all()


def test_split_is_stratified_disjoint_and_seeded(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    options = SplitOptions(test_size=0.2, seed=7)
    before = cleaned.copy()
    train, test = split_frame(cleaned, heart_spec, options)
    assert (len(train), len(test)) == (734, 184)
    assert train.index.equals(pd.RangeIndex(734)) and test.index.equals(pd.RangeIndex(184))
    pd.testing.assert_frame_equal(cleaned, before)  # the cleaned frame keeps its own numbering
    # The same rows as scikit-learn's split, numbered from zero.
    _, sklearn_test = train_test_split(cleaned, test_size=0.2, stratify=cleaned["HeartDisease"], random_state=7)
    pd.testing.assert_frame_equal(test, sklearn_test.reset_index(drop=True))
    overall = cleaned["HeartDisease"].mean()
    for part in (train, test):
        assert abs(part["HeartDisease"].mean() - overall) < 0.02
    again = split_frame(cleaned, heart_spec, options)
    pd.testing.assert_frame_equal(test, again[1])
    other = split_frame(cleaned, heart_spec, SplitOptions(seed=8))
    assert not test.equals(other[1])


def test_split_options_leave_most_rows_for_training_and_have_no_validation_split():
    with pytest.raises(ValueError, match="less than or equal to 0.5"):
        SplitOptions(test_size=0.6)
    with pytest.raises(ValueError, match="validation_size"):
        SplitOptions.model_validate({"test_size": 0.2, "validation_size": 0.1})  # gone: CV folds validate


def test_preprocessor_learns_from_training_rows_only(split, heart_spec):
    X_train, X_test = split
    preprocessor = build_preprocessor(PreprocessingOptions(), heart_spec).fit(X_train)
    imputer = preprocessor.named_transformers_["numeric"].named_steps["impute"]
    columns = list(imputer.feature_names_in_)
    assert columns == ["Age", "RestingBP", "Cholesterol", "MaxHR", "Oldpeak"]
    # IQR clipping keeps the order of values, so the median is the training median.
    assert imputer.statistics_[columns.index("Cholesterol")] == X_train["Cholesterol"].median()
    transformed = preprocessor.transform(X_test)
    assert not transformed.isna().any().any()
    assert "missingindicator_Cholesterol" in transformed.columns
    scaled = preprocessor.transform(X_train)["Age"]
    assert abs(scaled.mean()) < 1e-9 and np.isclose(scaled.std(ddof=0), 1.0)


def test_binary_features_are_imputed_but_not_scaled_or_screened(split, heart_spec):
    X_train, _ = split
    X_train = X_train.copy()
    X_train.loc[:9, "FastingBS"] = np.nan
    out = build_preprocessor(PreprocessingOptions(), heart_spec).fit_transform(X_train)
    assert set(out["FastingBS"].unique()) == {0.0, 1.0}
    assert (out.loc[:9, "FastingBS"] == X_train["FastingBS"].mode()[0]).all()


@pytest.mark.parametrize("imputation", ["median", "mean", "knn"])
def test_imputation_options_fill_every_gap(split, heart_spec, imputation):
    X_train, X_test = split
    options = PreprocessingOptions(numeric_imputation=imputation)
    preprocessor = build_preprocessor(options, heart_spec).fit(X_train)
    out = preprocessor.transform(X_test)
    assert not out.isna().any().any()
    missing = X_test["Cholesterol"].isna()
    filled = out.loc[missing, "Cholesterol"]
    if imputation == "knn":  # from neighbours: not one constant
        assert filled.nunique() > 1
    else:
        assert filled.nunique() == 1
        impute = preprocessor.named_transformers_["numeric"].named_steps["impute"]
        expected = getattr(X_train["Cholesterol"].clip(*_iqr_bounds(X_train["Cholesterol"])), imputation)()
        assert impute.statistics_[2] == pytest.approx(expected)


def test_median_imputation_is_scikit_learns_median_without_the_sort():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_001, 4))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 1] = np.round(X[:, 1], 1)  # ties
    X[:5_001, 2], X[5_001:, 2] = np.nan, rng.normal(size=5_000)  # an even number of values: the middle two's mean
    X[:, 3] = np.nan  # none: dropped by both
    for frame in (X, X[:200]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # both: "Skipping features without any observed values"
            ours = SimpleImputer(strategy=observed_median).fit(frame)
            theirs = SimpleImputer(strategy="median").fit(frame)
        np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)  # bitwise, NaN where empty
        np.testing.assert_array_equal(ours.transform(frame), theirs.transform(frame))


def _iqr_bounds(values, factor=1.5):
    q1, q3 = np.percentile(values.dropna(), [25, 75])
    return q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust", "none"])
def test_scaling_options(split, heart_spec, scaling):
    X_train, _ = split
    age = build_preprocessor(PreprocessingOptions(scaling=scaling), heart_spec).fit_transform(X_train)["Age"]
    if scaling == "standard":
        assert abs(age.mean()) < 1e-9 and np.isclose(age.std(ddof=0), 1)
    elif scaling == "robust":
        assert age.median() == pytest.approx(0) and np.subtract(*np.percentile(age, [75, 25])) == pytest.approx(1)
    elif scaling == "minmax":
        assert (age.min(), age.max()) == (pytest.approx(0), pytest.approx(1))
    else:
        pd.testing.assert_series_equal(age, X_train["Age"])


def test_encoding_options_and_unknown_categories(split, heart_spec):
    X_train, X_test = split
    onehot = build_preprocessor(PreprocessingOptions(), heart_spec).fit(X_train)
    ordinal = build_preprocessor(PreprocessingOptions(categorical_encoding="ordinal"), heart_spec).fit(X_train)
    assert {"ChestPainType_ASY", "ChestPainType_TA"} <= set(onehot.get_feature_names_out())
    codes = ordinal.transform(X_test)["ChestPainType"]
    assert set(codes.unique()) == {0.0, 1.0, 2.0, 3.0}
    unseen = X_test.head(1).assign(ChestPainType="XYZ")  # never in validated data, but a model must not crash
    assert onehot.transform(unseen).filter(like="ChestPainType_").sum(axis=1).iloc[0] == 0
    assert ordinal.transform(unseen)["ChestPainType"].iloc[0] == -1


TEXT_COLUMNS = ["Sex", "ChestPainType", "RestingECG", "ExerciseAngina", "ST_Slope"]


@pytest.mark.parametrize("output", ["default", "pandas"])
def test_fast_one_hot_encoder_encodes_as_scikit_learns(split, output, monkeypatch):
    X_train, X_test = split
    records = pd.concat([X_test[TEXT_COLUMNS],
                         X_test[TEXT_COLUMNS].head(3).assign(ChestPainType=["XYZ", None, np.nan], Sex=1)])
    ours = FastOneHotEncoder(handle_unknown="ignore", sparse_output=False).set_output(transform=output)
    expected = OneHotEncoder(handle_unknown="ignore", sparse_output=False).set_output(transform=output)
    expected = expected.fit(X_train[TEXT_COLUMNS]).transform(records)
    ours.fit(X_train[TEXT_COLUMNS])
    # The fast path, not scikit-learn's transform behind it, gives the output compared.
    monkeypatch.setattr(OneHotEncoder, "transform", lambda self, X: pytest.fail("scikit-learn's transform was used"))
    encoded = ours.transform(records)
    if output == "pandas":
        pd.testing.assert_frame_equal(encoded, expected)
    else:
        assert isinstance(encoded, np.ndarray) and encoded.dtype == expected.dtype
        np.testing.assert_array_equal(encoded, expected)
    assert np.asarray(encoded)[-3:, ours.get_feature_names_out().tolist().index("Sex_M")].sum() == 0  # unknown


@pytest.mark.parametrize("settings", [{"sparse_output": True}, {"drop": "first", "sparse_output": False},
                                      {"min_frequency": 50, "sparse_output": False},
                                      {"handle_unknown": "error", "sparse_output": False}])
def test_fast_one_hot_encoder_leaves_the_rest_to_scikit_learn(split, settings):
    X_train, X_test = split
    ours = FastOneHotEncoder(**settings).fit(X_train[TEXT_COLUMNS])
    theirs = OneHotEncoder(**settings).fit(X_train[TEXT_COLUMNS])
    encoded, expected = ours.transform(X_test[TEXT_COLUMNS]), theirs.transform(X_test[TEXT_COLUMNS])
    assert sparse.issparse(encoded) == sparse.issparse(expected)
    np.testing.assert_array_equal(encoded.toarray() if sparse.issparse(encoded) else encoded,
                                  expected.toarray() if sparse.issparse(expected) else expected)
    if settings.get("handle_unknown") == "error":
        with pytest.raises(ValueError, match="unknown categories"):
            ours.transform(X_test[TEXT_COLUMNS].head(1).assign(ST_Slope="Sideways"))


def test_fast_one_hot_encoder_with_missing_categories_encodes_as_scikit_learns(split):
    X_train, X_test = split
    train = X_train[TEXT_COLUMNS].astype(object)
    train.iloc[:5, 1] = np.nan  # a fitted category NaN: scikit-learn's own lookup
    ours = FastOneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train)
    theirs = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(train)
    records = pd.concat([X_test[TEXT_COLUMNS], train.head(5)])
    np.testing.assert_array_equal(ours.transform(records), theirs.transform(records))


def test_missing_indicators_can_be_switched_off(split, heart_spec):
    X_train, _ = split
    out = build_preprocessor(PreprocessingOptions(missing_indicators=False), heart_spec).fit_transform(X_train)
    assert not any(c.startswith("missingindicator_") for c in out.columns)


@pytest.mark.parametrize("method", ["iqr", "zscore"])
def test_outliers_are_clipped_to_training_bounds_and_counted(split, heart_spec, method):
    X_train, X_test = split
    options = PreprocessingOptions(outliers=OutlierOptions(method=method, action="clip"), scaling="none")
    preprocessor = build_preprocessor(options, heart_spec).fit(X_train)
    cholesterol = X_train["Cholesterol"].dropna()
    if method == "iqr":
        low, high = _iqr_bounds(cholesterol)
    else:
        low, high = cholesterol.mean() - 3 * cholesterol.std(ddof=0), cholesterol.mean() + 3 * cholesterol.std(ddof=0)
    report = outlier_report(preprocessor, {"train": X_train, "test": X_test})
    assert report["bounds"]["Cholesterol"] == pytest.approx([low, high])
    assert report["counts"]["train"]["Cholesterol"] == int(((cholesterol < low) | (cholesterol > high)).sum()) > 0
    assert report["total"]["test"] == sum(report["counts"]["test"].values())
    out = preprocessor.transform(X_test)
    assert out["Cholesterol"].max() <= high and out["Cholesterol"].min() >= low
    assert "FastingBS" not in report["bounds"]


def test_outliers_can_be_flagged_instead(split, heart_spec):
    X_train, X_test = split
    options = PreprocessingOptions(outliers=OutlierOptions(method="iqr", action="flag", iqr_factor=3.0), scaling="none")
    out = build_preprocessor(options, heart_spec).fit(X_train).transform(X_test)
    low, high = _iqr_bounds(X_train["Cholesterol"], 3.0)
    flagged = (X_test["Cholesterol"] < low) | (X_test["Cholesterol"] > high)
    assert (out["Cholesterol_outlier"] == flagged.astype(float)).all()
    assert out["Cholesterol"].max() == X_test["Cholesterol"].max()  # values kept as they were


def test_outlier_handling_can_be_off(split, heart_spec):
    X_train, _ = split
    preprocessor = build_preprocessor(PreprocessingOptions(outliers=OutlierOptions(method="none")), heart_spec)
    preprocessor.fit(X_train)
    assert outlier_report(preprocessor, {"train": X_train}) == {}
    assert "outliers" not in preprocessor.named_transformers_["numeric"].named_steps


def test_outlier_handler_ignores_indicator_columns():
    handler = OutlierHandler().fit(pd.DataFrame({"flag": [0, 0, 0, 0, 1] * 4, "x": list(range(19)) + [500]}))
    assert handler.outlier_counts_ == {"flag": 0, "x": 1}
