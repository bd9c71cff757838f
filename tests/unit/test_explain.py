"""LIME over raw clinical features: encoding, correctness on a known model, parallel == plain loop."""

import collections

import numpy as np
import pandas as pd
import pytest
from lime import lime_tabular
from lime.lime_tabular import LimeTabularExplainer
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from heartml.core.explain import (
    ExplainOptions,
    RawEncoding,
    explain_patients,
    lime_stability,
    make_explainer,
    model_predict_proba,
    patient_positions,
    patient_seed,
)


def one_feature_model(column: str, X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """Raw records in, but the classifier only ever sees `column`."""
    encoder = OneHotEncoder(handle_unknown="ignore") if X[column].dtype == object else "passthrough"
    features = ColumnTransformer([("only", encoder, [column])])
    return Pipeline([("features", features), ("classifier", LogisticRegression(max_iter=1000))]).fit(X, y)


def test_encoding_round_trips_raw_records_including_missing_values(heart_split, heart_spec):
    (X_train, _), (X_test, _) = heart_split
    X = X_test.copy()
    X.loc[X.index[0], "ChestPainType"] = np.nan
    X.loc[X.index[1], "Age"] = np.nan
    encoding = RawEncoding.fit(X_train, heart_spec, X)
    assert encoding.missing_flags == ["Age", "RestingBP", "Cholesterol"]  # numeric columns in record order
    assert encoding.feature_names[-3:] == ["Age missing", "RestingBP missing", "Cholesterol missing"]
    assert encoding.categories["ChestPainType"][-1] == "missing"
    assert encoding.categories["FastingBS"] == [0.0, 1.0]
    matrix = encoding.encode(X)
    assert matrix.dtype == float and not np.isnan(matrix).any()
    pd.testing.assert_frame_equal(encoding.decode(matrix), X.reset_index(drop=True), check_dtype=False)
    names = encoding.categorical_names
    assert [encoding.feature_names[i] for i in encoding.categorical_indices][:5] == [
        "Sex", "ChestPainType", "FastingBS", "RestingECG", "ExerciseAngina"]
    assert names[encoding.feature_names.index("Sex")] == ["M", "F"]


@pytest.mark.parametrize("column", ["Oldpeak", "ST_Slope"])
def test_lime_puts_the_only_feature_a_model_uses_first(heart_split, heart_spec, column):
    (X_train, y_train), (X_test, y_test) = heart_split
    model = one_feature_model(column, X_train, y_train)
    options = ExplainOptions(patients=list(range(0, 60, 6)), num_samples=1000, n_jobs=1)
    explanations = explain_patients(model, X_train, X_test, heart_spec, options, y_test)
    assert [p.patient for p in explanations.patients] == options.patients
    for patient in explanations.patients:
        assert patient.contributions[0].feature == column, patient.contributions[:2]
        assert patient.label == int(y_test.iloc[patient.patient])
        assert patient.probability == pytest.approx(model.predict_proba(X_test.iloc[[patient.patient]])[0, 1])
    ranking = explanations.global_importance
    assert ranking[0].feature == column and ranking[0].patients_in_top == len(options.patients)
    assert ranking[1].mean_abs_weight < 0.1 * ranking[0].mean_abs_weight


def lime_own_explainer(encoding: RawEncoding, training: np.ndarray, seed: int) -> LimeTabularExplainer:
    return LimeTabularExplainer(
        training, mode="classification", feature_names=encoding.feature_names,
        categorical_features=encoding.categorical_indices, categorical_names=encoding.categorical_names,
        class_names=["no", "yes"], discretize_continuous=True, random_state=seed)


def test_the_explainer_holds_the_training_statistics_lime_computes(heart_split, heart_spec):
    X_train, _ = heart_split[0]
    encoding = RawEncoding.fit(X_train, heart_spec)
    training = encoding.encode(X_train)
    lime_own = lime_own_explainer(encoding, training, seed=3)
    ours = make_explainer(encoding, training, ["no", "yes"], seed=3)
    assert ours.feature_values.keys() == lime_own.feature_values.keys() == set(range(training.shape[1]))
    for feature, values in lime_own.feature_values.items():
        assert ours.feature_values[feature] == values
        assert [type(v) for v in ours.feature_values[feature]] == [type(v) for v in values]
        np.testing.assert_array_equal(ours.feature_frequencies[feature], lime_own.feature_frequencies[feature])
    np.testing.assert_array_equal(ours.scaler.scale_, lime_own.scaler.scale_)
    assert ours.discretizer.means == lime_own.discretizer.means
    # LIME's own counting is back once the explainer exists. With NaN in the training rows, LIME's Counter keeps
    # each NaN apart (np.unique would merge them): LIME counts those.
    assert lime_tabular.collections is collections
    categorical = encoding.categorical_indices[0]
    training[::7, categorical] = np.nan
    with_nan = make_explainer(encoding, training, ["no", "yes"], seed=3).feature_values[categorical]
    assert len(with_nan) == len(lime_own_explainer(encoding, training, seed=3).feature_values[categorical]) \
        > len(np.unique(training[:, categorical]))


def test_parallel_batched_explanations_equal_a_plain_explain_instance_loop(heart_split, heart_spec):
    (X_train, y_train), (X_test, _) = heart_split
    model = one_feature_model("MaxHR", X_train, y_train)
    model.set_params(features=ColumnTransformer([("num", "passthrough", ["MaxHR", "Oldpeak"]),
                                                 ("cat", OneHotEncoder(), ["ST_Slope", "Sex"])])).fit(X_train, y_train)
    options = ExplainOptions(patients=[3, 0, 7, 11, 5], num_samples=600, n_jobs=2, batch_size=2, seed=9)
    parallel = explain_patients(model, X_train, X_test, heart_spec, options)
    assert parallel.n_jobs == 2

    encoding = RawEncoding.fit(X_train, heart_spec, X_test.iloc[options.patients])
    plain = lime_own_explainer(encoding, encoding.encode(X_train), seed=options.seed)
    predict = model_predict_proba(model, encoding)
    for ours, position in zip(parallel.patients, options.patients):
        plain.random_state.seed(patient_seed(options.seed, position))
        exp = plain.explain_instance(encoding.encode(X_test.iloc[[position]])[0], predict, labels=(1,),
                                     num_features=options.num_features, num_samples=options.num_samples)
        assert [(encoding.feature_names[i], w) for i, w in exp.as_map()[1]] == [
            (c.feature, c.weight) for c in ours.contributions]
        assert ours.intercept == exp.intercept[1]
    assert explain_patients(model, X_train, X_test, heart_spec,
                            options.model_copy(update={"n_jobs": 1, "batch_size": 16})).patients == parallel.patients
    # The stability reruns share the pool with the patients' own explanations: as separate runs under those seeds.
    seeds = parallel.stability.seeds
    assert seeds == [10, 11] and parallel.explanations_made == 5 + 5 * 2
    alone = [explain_patients(model, X_train, X_test, heart_spec,
                              options.model_copy(update={"seed": seed, "stability_patients": 0})) for seed in seeds]
    assert all(run.stability is None and run.explanations_made == 5 for run in alone)
    as_summaries = [[{"contributions": p.contributions} for p in run.patients] for run in [parallel, *alone]]
    assert parallel.stability == lime_stability(as_summaries[0], as_summaries[1:], seeds)


def test_patients_outside_the_test_split_are_rejected(heart_split, heart_spec):
    (X_train, y_train), (X_test, _) = heart_split
    model = one_feature_model("Age", X_train, y_train)
    with pytest.raises(ValueError, match=r"explain.patients: positions \[999\] are outside the test split"):
        explain_patients(model, X_train, X_test, heart_spec, ExplainOptions(patients=[1, 999]))


def test_a_large_test_split_is_explained_on_a_seeded_sample_unless_patients_are_named():
    capped = ExplainOptions(max_patients=50, seed=3)
    sample = patient_positions(10_000, capped)
    assert len(sample) == len(set(sample)) == 50 and sample == sorted(sample) and max(sample) < 10_000
    assert patient_positions(10_000, capped) == sample
    assert patient_positions(10_000, capped.model_copy(update={"seed": 4})) != sample
    assert patient_positions(40, capped) == list(range(40))  # a split within the cap: every patient
    assert patient_positions(10_000, ExplainOptions(max_patients=None)) == list(range(10_000))
    assert patient_positions(10_000, ExplainOptions(patients=[9_999, 2], max_patients=1)) == [9_999, 2]
