import pickle
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from heartml.core.dataset import load_dataset_spec
from heartml.core.errors import ConfigError
from heartml.core.features import (
    FeatureOptions,
    build_feature_pipeline,
    check_feature_options,
    describe_feature_pipeline,
)
from heartml.core.modeling import assemble_model, cross_validate, make_estimator, stratified_folds
from heartml.core.preprocessing import (
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    split_frame,
)
from heartml.core.transforms import AgeBands, GroupRelative
from tests.conftest import ROOT
from tests.unit.test_validation import synthetic_heart_failure_records


@pytest.fixture
def splits(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    train, test = split_frame(cleaned, heart_spec, SplitOptions())
    return features_and_target(train, heart_spec) + features_and_target(test, heart_spec)


def pipeline(spec, **options):
    return build_feature_pipeline(build_preprocessor(PreprocessingOptions(), spec), FeatureOptions(**options), spec)


def test_age_bands_cut_at_training_quantiles(splits):
    X_train, _, X_test, _ = splits
    bands = AgeBands("Age", bands=4).fit(X_train)
    assert np.quantile(X_train["Age"], [0.25, 0.5, 0.75]).tolist() == [47.0, 55.0, 61.0]
    assert bands.cuts_.tolist() == [47.0, 55.0, 61.0]
    assert bands.labels_ == ["under 47", "47-55", "55-61", "61+"]
    out = bands.transform(X_test.assign(Age=[46.9, 47, 60.9, 61, np.nan] + [50] * (len(X_test) - 5)))
    assert out["age_band"].iloc[:4].tolist() == ["under 47", "47-55", "55-61", "61+"]
    assert pd.isna(out["age_band"].iloc[4])
    fixed = AgeBands("Age", edges=[40, 65]).fit(X_train)
    assert fixed.labels_ == ["under 40", "40-65", "65+"]


def test_group_relative_uses_training_group_means_only(splits):
    X_train, _, X_test, _ = splits
    X_train = AgeBands("Age").fit_transform(X_train)
    X_test = AgeBands("Age").fit(splits[0]).transform(X_test)
    relative = GroupRelative(["Cholesterol"], ["age_band", "Sex"]).fit(X_train)
    means = X_train.groupby(["age_band", "Sex"])["Cholesterol"].mean()
    out = relative.transform(X_test)
    row = X_test.dropna(subset=["Cholesterol"]).iloc[0]
    expected = row["Cholesterol"] - means[(row["age_band"], row["Sex"])]
    assert out.loc[row.name, "Cholesterol_vs_age_band_Sex"] == pytest.approx(expected)
    # Test rows never move the fitted means.
    assert relative.transform(X_train).equals(
        GroupRelative(["Cholesterol"], ["age_band", "Sex"]).fit(X_train).transform(X_train))
    # An unseen group, or a group too small, falls back to the mean of all training rows.
    unseen = X_test.head(1).assign(Sex="X", Cholesterol=300.0)
    overall = X_train["Cholesterol"].mean()
    assert relative.transform(unseen)["Cholesterol_vs_age_band_Sex"].iloc[0] == pytest.approx(300 - overall)
    strict = GroupRelative(["Cholesterol"], ["age_band", "Sex"], min_group_size=10_000).fit(X_train)
    strict_value = strict.transform(unseen.assign(Sex="M"))["Cholesterol_vs_age_band_Sex"].iloc[0]
    assert strict_value == pytest.approx(300 - overall)
    ratio = GroupRelative(["Cholesterol"], ["Sex"], statistic="median", mode="ratio").fit(X_train)
    medians = X_train.groupby("Sex")["Cholesterol"].median()
    assert ratio.transform(unseen.assign(Sex="F"))["Cholesterol_vs_Sex"].iloc[0] == pytest.approx(300 / medians["F"])


def test_group_relative_transforms_concurrent_requests_of_a_loaded_model(splits):
    """A served model transforms requests in threads: pandas builds an index's lookup table on first use, not
    thread-safely (with the fitted index shared: ~1% of first calls failed, "non-unique multi-index")."""
    X_train = AgeBands("Age").fit_transform(splits[0])
    fitted = pickle.dumps(GroupRelative(["Cholesterol"], ["age_band", "Sex"]).fit(X_train))
    expected = pickle.loads(fitted).transform(X_train.head(3))
    failures, results = [], []
    for _ in range(100):
        loaded, start = pickle.loads(fitted), threading.Barrier(8)

        def request(model=loaded, start=start):
            start.wait()
            try:
                results.append(model.transform(X_train.head(3)))
            except ValueError as error:
                failures.append(str(error))
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == [] and len(results) == 800
    assert all(result.equals(expected) for result in results)


def test_default_options_are_the_preprocessing_alone(splits, heart_spec):
    X_train, y_train, _, _ = splits
    fitted = pipeline(heart_spec).fit(X_train, y_train)
    assert [name for name, _ in fitted.steps] == ["preprocess"]
    assert fitted.transform(X_train).shape == (734, 21)


def test_engineered_features_join_the_preprocessing(splits, heart_spec):
    X_train, y_train, X_test, _ = splits
    fitted = pipeline(heart_spec, age_bands={"enabled": True}, group_relative={"enabled": True}).fit(X_train, y_train)
    out = fitted.transform(X_test)
    assert {"age_band_under 47", "age_band_61+"} <= set(out.columns)
    relative = {f"{c}_vs_age_band_Sex" for c in ("RestingBP", "Cholesterol", "MaxHR", "Oldpeak")}
    assert relative <= set(out.columns) and "Age_vs_age_band_Sex" not in out.columns
    assert not out.isna().any().any() and out.shape == (len(X_test), 21 + 4 + 4 + 1)  # + bands, relatives, indicator
    info = describe_feature_pipeline(fitted)
    assert info["steps"] == ["age_bands", "group_relative", "preprocess"]
    assert info["age_bands"]["cuts"] == [47.0, 55.0, 61.0] and info["feature_count"] == out.shape[1]


def test_polynomial_selection_and_pca(splits, heart_spec):
    X_train, y_train, X_test, _ = splits
    poly = pipeline(heart_spec, polynomial={"enabled": True}).fit(X_train, y_train)
    assert poly.transform(X_test).shape[1] == 21 + 21 * 20 // 2
    squares = pipeline(heart_spec, polynomial={"enabled": True, "interaction_only": False}).fit(X_train, y_train)
    assert squares.transform(X_test).shape[1] == 21 + 21 * 22 // 2
    for score in ("f_classif", "mutual_info"):
        select = pipeline(heart_spec, selection={"method": "kbest", "k": 6, "score": score}).fit(X_train, y_train)
        chosen = describe_feature_pipeline(select)["selected_features"]
        assert len(chosen) == 6 and list(select.transform(X_test).columns) == chosen
    assert "ST_Slope_Up" in describe_feature_pipeline(
        pipeline(heart_spec, selection={"method": "kbest", "k": 3}).fit(X_train, y_train))["selected_features"]
    pca = pipeline(heart_spec, pca_components=5).fit(X_train, y_train)
    assert pca.transform(X_test).shape[1] == 5
    assert 0.5 < describe_feature_pipeline(pca)["pca_explained_variance"] < 1


ALL_ON = dict(age_bands={"enabled": True}, group_relative={"enabled": True}, polynomial={"enabled": True},
              selection={"method": "kbest", "k": 30}, pca_components=12)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # constant products in small folds
def test_everything_on_refits_inside_cv_and_survives_pickling(splits, heart_spec):
    X_train, y_train, X_test, y_test = splits
    features = pipeline(heart_spec, **ALL_ON)
    model = assemble_model(features, make_estimator("logistic_regression", {}, seed=0))
    scores = cross_validate(model, X_train, y_train, stratified_folds(y_train, 3, seed=0), "roc_auc").scores
    assert min(scores) > 0.8
    with pytest.raises(Exception, match="not fitted"):
        clone(features).transform(X_test)  # model building gets an unfitted copy
    model.fit(X_train, y_train)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(X_test), model.predict_proba(X_test))


def test_xgboost_accepts_the_engineered_column_names(splits, heart_spec):
    X_train, y_train, X_test, _ = splits
    model = assemble_model(pipeline(heart_spec, age_bands={"enabled": True}, group_relative={"enabled": True}),
                           make_estimator("xgboost", {"n_estimators": 20}, seed=0))
    assert model.fit(X_train, y_train).predict_proba(X_test).shape == (len(X_test), 2)


@pytest.mark.parametrize("options, message", [
    ({"group_relative": {"enabled": True}}, "features.group_relative.by: 'age_band' needs age_bands.enabled: true"),
    ({"age_bands": {"enabled": True, "column": "Sex"}}, "features.age_bands.column: 'Sex' is not a numeric feature"),
    ({"age_bands": {"enabled": True}, "group_relative": {"enabled": True, "by": ["Age"]}},
     "features.group_relative.by: 'Age' is not a categorical or binary feature"),
    ({"group_relative": {"enabled": True, "by": ["sex"], "columns": ["Cholesterol", "LDL"]}},
     "features.group_relative.columns: 'LDL' is not a numeric feature of dataset 'heart'"),
])
def test_options_naming_columns_are_checked_against_the_dataset(heart_spec, options, message):
    with pytest.raises(ConfigError) as caught:
        check_feature_options(FeatureOptions(**options), heart_spec)
    assert caught.value.lines == [message + ("" if "dataset" in message or "needs" in message
                                             else " of dataset 'heart'")]


def test_the_same_options_work_on_the_heart_failure_records_schema():
    spec = load_dataset_spec(ROOT / "configs" / "datasets" / "heart_failure_records.yaml")
    raw = synthetic_heart_failure_records(240)
    raw["platelets"] = raw["platelets"].str.replace(",", "").astype(int)
    cleaned, report = clean_frame(raw, spec)
    assert report.excluded_columns == ["time"] and "time" not in cleaned
    train, test = split_frame(cleaned, spec, SplitOptions())
    X_train, y_train = features_and_target(train, spec)
    features = pipeline(spec, age_bands={"enabled": True}, group_relative={"enabled": True})
    fitted = clone(features).fit(X_train, y_train)
    out = fitted.transform(features_and_target(test, spec)[0])
    assert "ejection_fraction_vs_age_band_sex" in out.columns and "sex" in out.columns
    assert set(out["sex"].unique()) <= {0.0, 1.0}  # binary: not scaled
    model = assemble_model(features, make_estimator("logistic_regression", {}, seed=0))
    result = cross_validate(model, X_train, y_train, stratified_folds(y_train, 3, seed=0), "roc_auc")
    assert np.mean(result.scores) > 0.7
