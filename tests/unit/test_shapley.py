"""SHAP in the raw feature space: the explainer chosen, values that add up, agreement with LIME."""

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from heartml.core.calibration import CalibratedClassifier, ProbabilityMap
from heartml.core.explain import ExplainOptions, explain_patients
from heartml.core.modeling import assemble_model, make_estimator, make_soft_voting
from heartml.core.shapley import ShapOptions, agreement, choose_method, compare_with_lime, shap_patients
from tests.unit.conftest import default_feature_pipeline

PATIENTS = list(range(30))


def one_feature_trees(column, X, y) -> Pipeline:
    """Raw records in; the trees only ever see `column`."""
    features = ColumnTransformer([("only", "passthrough", [column])], verbose_feature_names_out=False)
    trees = XGBClassifier(n_estimators=30, max_depth=2, n_jobs=1, random_state=0)
    return Pipeline([("features", features), ("classifier", trees)]).fit(X, y)


@pytest.mark.parametrize("method", ["tree", "permutation"])
def test_a_model_that_uses_one_feature_is_explained_by_it_first_by_shap_and_lime(heart_split, heart_spec, method):
    (X, y), (X_test, _) = heart_split
    model = one_feature_trees("Oldpeak", X, y)
    shap = shap_patients(model, X, X_test, PATIENTS, heart_spec, ShapOptions(method=method, background_rows=50))
    lime = explain_patients(model, X, X_test, heart_spec, ExplainOptions(patients=PATIENTS, num_samples=500,
                                                                         n_jobs=1, stability_patients=5))
    assert shap.method == method
    assert shap.global_importance[0].feature == "Oldpeak" and lime.global_importance[0].feature == "Oldpeak"
    others = shap.matrix().drop(columns="Oldpeak").abs().to_numpy()
    assert others.max() < 1e-6  # a feature the model never sees gets nothing
    for patient in shap.patients:  # the values add up to the prediction
        assert patient.base_value + sum(patient.values.values()) == pytest.approx(patient.output, abs=1e-6)
    both = agreement(shap, lime)
    assert both.patients == len(PATIENTS) and 0 < both.top_overlap <= 1
    assert lime.stability.patients == 5 and lime.stability.seeds == [43, 44]
    assert 0 <= lime.stability.top_overlap <= 1


def test_tree_shap_where_it_applies_permutation_elsewhere(heart_split, heart_spec):
    (X, y), _ = heart_split
    features = default_feature_pipeline()
    trees = assemble_model(features, make_estimator("xgboost", {"n_estimators": 20}, 0)).fit(X, y)
    assert choose_method(trees, heart_spec, "auto")[0] == "tree"
    linear = assemble_model(features, make_estimator("logistic_regression", {}, 0)).fit(X, y)
    assert choose_method(linear, heart_spec, "auto") == (
        "permutation", "LogisticRegression is not a tree ensemble: permutation explainer on the raw records")
    voting = assemble_model(features, make_soft_voting({"xgboost": {"n_estimators": 20},
                                                        "logistic_regression": {}}, 0)).fit(X, y)
    assert choose_method(voting, heart_spec, "auto")[0] == "permutation"
    with pytest.raises(ValueError, match="not a tree ensemble"):
        choose_method(voting, heart_spec, "tree")
    calibrated = Pipeline([("features", trees.named_steps["features"]),
                           ("classifier", CalibratedClassifier(trees.named_steps["classifier"],
                                                               ProbabilityMap("sigmoid").fit(
                                                                   trees.predict_proba(X)[:, 1], y)))])
    method, why = choose_method(calibrated, heart_spec, "auto")
    assert method == "tree" and "before the calibration map" in why


def test_tree_and_permutation_values_agree_on_a_tree_model(heart_split, heart_spec):
    (X, y), (X_test, _) = heart_split
    model = assemble_model(default_feature_pipeline(), make_estimator("xgboost", {"n_estimators": 50}, 0)).fit(X, y)
    tree = shap_patients(model, X, X_test, PATIENTS, heart_spec, ShapOptions(method="tree", background_rows=50))
    permutation = shap_patients(model, X, X_test, PATIENTS, heart_spec,
                                ShapOptions(method="permutation", background_rows=50, max_evals=500))
    # Two estimators of the same interventional Shapley values: close, feature by feature.
    difference = (tree.matrix() - permutation.matrix()).abs().to_numpy()
    assert np.median(difference) < 0.01 and difference.max() < 0.1
    assert tree.global_importance[0].feature == permutation.global_importance[0].feature
    lime = explain_patients(model, X, X_test, heart_spec, ExplainOptions(patients=PATIENTS, num_samples=1000,
                                                                         n_jobs=1, stability_patients=0))
    compared = compare_with_lime(tree, lime)
    assert compared.agreement.global_rank_correlation > 0.5 and compared.lime_stability is None


def test_a_random_forest_is_explained_path_dependent_in_probability_units_xgboost_interventional(heart_split,
                                                                                                 heart_spec):
    (X, y), (X_test, _) = heart_split
    forest = assemble_model(default_feature_pipeline(), make_estimator("random_forest", {"n_estimators": 30}, 0))
    forest.fit(X, y)
    fast = shap_patients(forest, X, X_test, PATIENTS, heart_spec, ShapOptions(method="tree"))
    assert fast.tree_algorithm == "path_dependent" and "(path-dependent)" in fast.why
    assert fast.background_rows == len(X)  # the trees' cover of the training rows, not a sample
    probability = forest.predict_proba(X_test.iloc[PATIENTS])[:, 1]
    for patient, p in zip(fast.patients, probability):  # the forest's own output is P(positive): they add up to it
        assert patient.output == pytest.approx(p) and patient.probability == pytest.approx(p)
        assert patient.base_value + sum(patient.values.values()) == pytest.approx(p, abs=1e-6)
    assert fast.patients[0].base_value == pytest.approx(forest.predict_proba(X)[:, 1].mean(), abs=0.02)
    interventional = shap_patients(forest, X, X_test, PATIENTS, heart_spec,
                                   ShapOptions(method="tree", tree_algorithm="interventional", background_rows=200))
    assert interventional.tree_algorithm == "interventional" and interventional.background_rows == 200
    # Two references for "absent" (the trees' cover, a sample of rows): close values, the same strongest feature.
    difference = (fast.matrix() - interventional.matrix()).abs().to_numpy()
    assert np.median(difference) < 0.01 and difference.max() < 0.1
    assert fast.global_importance[0].feature == interventional.global_importance[0].feature

    boosted = assemble_model(default_feature_pipeline(), make_estimator("xgboost", {"n_estimators": 20}, 0)).fit(X, y)
    assert shap_patients(boosted, X, X_test, PATIENTS[:3], heart_spec,
                         ShapOptions(method="tree")).tree_algorithm == "interventional"
    with pytest.raises(ValueError, match="add up log-odds"):
        shap_patients(boosted, X, X_test, PATIENTS[:3], heart_spec,
                      ShapOptions(method="tree", tree_algorithm="path_dependent"))


def test_many_patients_are_split_over_worker_processes_with_the_same_values(heart_split, heart_spec):
    import pandas as pd

    from heartml.core.shapley import MIN_PATIENTS_PER_WORKER

    (X, y), (X_test, _) = heart_split
    many = pd.concat([X_test] * (2 * MIN_PATIENTS_PER_WORKER // len(X_test) + 1), ignore_index=True)
    assert len(many) >= 2 * MIN_PATIENTS_PER_WORKER
    for family in ("xgboost", "random_forest"):
        model = assemble_model(default_feature_pipeline(), make_estimator(family, {"n_estimators": 20}, 0)).fit(X, y)
        alone, split = (shap_patients(model, X, many, range(len(many)), heart_spec,
                                      ShapOptions(method="tree", max_patients=None, n_jobs=n_jobs))
                        for n_jobs in (1, 2))
        assert np.allclose(alone.matrix().to_numpy(), split.matrix().to_numpy(), rtol=0, atol=1e-12), family
