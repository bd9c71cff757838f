"""Test-split evaluation: metrics against scikit-learn, bootstrap intervals, thresholds, the fitting check."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, matthews_corrcoef, roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from heartml.core.dataset import AcceptanceLimits
from heartml.core.evaluation import (
    METRICS,
    BootstrapOptions,
    QualityGateError,
    ThresholdRule,
    bootstrap_metrics,
    bootstrap_roc_auc,
    check_fitting,
    classification_metrics,
    comparison_with_test_metrics,
    enforce_quality_gate,
    evaluate_model,
    operating_points,
    positive_probabilities,
    resampled_metrics,
    threshold_for_sensitivity,
)
from heartml.core.modeling import assemble_model, cross_validate, make_estimator, stratified_folds

Y = np.array([0, 0, 1, 1, 1, 0])
PROBA = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])


def test_metrics_match_sklearn_on_a_known_example():
    metrics = classification_metrics(Y, PROBA)
    assert list(metrics) == list(METRICS)
    # At 0.5: TP = 2 (0.7, 0.9), FP = 1 (0.6), FN = 1 (0.4), TN = 2.
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(f1_score(Y, PROBA >= 0.5)) == pytest.approx(2 / 3)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(Y, PROBA)) == pytest.approx(8 / 9)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(Y, PROBA))
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(Y, PROBA >= 0.5)) == pytest.approx(1 / 3)
    assert metrics["brier"] == pytest.approx(brier_score_loss(Y, PROBA))


def test_vectorized_resample_metrics_equal_sklearn_with_ties_and_empty_predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    proba = np.round(np.clip(0.3 * y + 0.7 * rng.random(40), 0, 1), 1)  # coarse values: many ties
    proba[:5] = 0.0
    rows = rng.integers(0, 40, size=(120, 40))
    rows = rows[(y[rows].sum(axis=1) > 0) & (y[rows].sum(axis=1) < 40)]
    counts = np.stack([np.bincount(r, minlength=40) for r in rows])
    for threshold in (0.5, 0.95):  # 0.95: some resamples predict no positive at all
        fast = resampled_metrics(y, proba, counts, threshold)
        reference = np.array([list(classification_metrics(y[r], proba[r], threshold).values()) for r in rows])
        assert np.allclose(fast, reference, atol=1e-12)


def test_bootstrap_intervals_bracket_the_estimate_and_repeat_with_the_seed():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    proba = np.clip(0.35 * y + 0.65 * rng.random(150), 0, 1)
    estimates, used = bootstrap_metrics(y, proba, BootstrapOptions(resamples=300, seed=4))
    assert used == 300 and set(estimates) == set(METRICS)
    for name, e in estimates.items():
        assert e.low <= e.value <= e.high, name
        assert e.high - e.low < 0.35, name
    assert estimates["roc_auc"].value == pytest.approx(roc_auc_score(y, proba))
    again, _ = bootstrap_metrics(y, proba, BootstrapOptions(resamples=300, seed=4))
    assert again == estimates
    narrower, _ = bootstrap_metrics(y, proba, BootstrapOptions(resamples=300, seed=4, confidence=0.5))
    assert narrower["roc_auc"].high - narrower["roc_auc"].low < estimates["roc_auc"].high - estimates["roc_auc"].low


def test_bootstrap_does_not_depend_on_its_chunking_or_threads(monkeypatch):
    import heartml.core.evaluation as evaluation

    # Large enough that a matrix product would sum in another order for another number of rows (brier: 1e-16).
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 50_000)
    proba = np.round(np.clip(0.3 * y + 0.7 * rng.random(50_000), 0, 1), 2)
    whole, _ = bootstrap_metrics(y, proba, BootstrapOptions(resamples=20, seed=1))  # one resample per chunk
    monkeypatch.setattr(evaluation, "_CHUNK_CELLS", 50_000 * 7)  # 7 resamples per chunk, the last one partial
    chunked, used = bootstrap_metrics(y, proba, BootstrapOptions(resamples=20, seed=1))
    assert used == 20 and chunked == whole
    for n_jobs in (1, 3):  # the chunks evaluated by another number of threads, in another order
        assert bootstrap_metrics(y, proba, BootstrapOptions(resamples=20, seed=1, n_jobs=n_jobs))[0] == whole


def test_bootstrap_memory_stays_flat_on_a_large_test_split():
    import tracemalloc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200_000)
    proba = np.clip(0.3 * y + 0.7 * rng.random(200_000), 0, 1)
    tracemalloc.start()
    try:
        estimates, used = bootstrap_metrics(y, proba, BootstrapOptions(resamples=100, seed=0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Index matrices of all resamples at once would take 100 x 200k x 8 bytes = 160 MB, several times over.
    assert peak < 150 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert used == 100
    assert estimates["roc_auc"].low <= roc_auc_score(y, proba) <= estimates["roc_auc"].high


def test_screening_threshold_is_the_highest_that_reaches_the_sensitivity():
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    proba = np.array([0.95, 0.9, 0.8, 0.45, 0.3, 0.6, 0.35, 0.2, 0.1, 0.05])
    assert threshold_for_sensitivity(y, proba, 0.8) == pytest.approx(0.45)  # 4 of 5 positives at >= 0.45
    assert threshold_for_sensitivity(y, proba, 1.0) == pytest.approx(0.3)
    points = operating_points(y, proba, y, proba, ThresholdRule(min_sensitivity=0.8))
    registered, screening = points  # the fixed 0.5 rule is the registered point; "default" would repeat it
    assert (registered.name, registered.threshold, registered.cv_sensitivity, registered.cv_specificity) == (
        "registered", 0.5, 0.6, 0.8)
    assert screening.name == "screening"
    assert screening.threshold == pytest.approx(0.45)
    assert screening.test_sensitivity == pytest.approx(0.8) and screening.test_specificity == pytest.approx(0.8)
    assert screening.test_precision == pytest.approx(4 / 5)


def _scores(model, X, y, X_test, y_test):
    cv = cross_validate(model, X, y, stratified_folds(y, 5, seed=0), "roc_auc")
    fitted = model.fit(X, y)
    return (roc_auc_score(y, fitted.predict_proba(X)[:, 1]), cv.mean,
            roc_auc_score(y_test, fitted.predict_proba(X_test)[:, 1]))


def test_fitting_check_trips_on_a_deliberately_overfit_model(heart_split, default_features):
    (X, y), (X_test, y_test) = heart_split
    features = default_features
    memorizer = assemble_model(features, DecisionTreeClassifier(random_state=0))  # grown until every leaf is pure
    train, cv, test = _scores(memorizer, X, y, X_test, y_test)
    check = check_fitting("roc_auc", train, cv, test, AcceptanceLimits())
    assert train == pytest.approx(1.0) and check.train_cv_gap > 0.1
    assert check.verdict == "overfitting" and "train-CV gap" in check.findings[0]
    with pytest.raises(QualityGateError, match=r"model 'tree' is overfitting: train-CV gap 0\.\d+ > 0\.1"):
        enforce_quality_gate(check, "tree")

    sound = assemble_model(features, make_estimator("logistic_regression", {}, seed=0))
    assert check_fitting("roc_auc", *_scores(sound, X, y, X_test, y_test), AcceptanceLimits()).verdict == "ok"


def test_fitting_check_calls_a_model_below_the_floor_underfit(heart_split, default_features):
    (X, y), (X_test, y_test) = heart_split
    features = default_features
    constant = assemble_model(features, DummyClassifier(strategy="prior"))
    check = check_fitting("roc_auc", *_scores(constant, X, y, X_test, y_test), AcceptanceLimits(min_score=0.7))
    assert check.verdict == "underfitting"
    assert check.findings == ["train roc_auc 0.500 < 0.7", "CV roc_auc 0.500 < 0.7", "test roc_auc 0.500 < 0.7"]
    assert QualityGateError.exit_code == 3
    enforce_quality_gate(check_fitting("roc_auc", 0.95, 0.93, 0.92, AcceptanceLimits()), "fine")  # no raise


def test_evaluate_model_reports_the_selected_candidate(heart_split, default_features):
    (X, y), (X_test, y_test) = heart_split
    features = default_features
    model = assemble_model(features, make_estimator("logistic_regression", {}, seed=0)).fit(X, y)
    cv = cross_validate(model, X, y, stratified_folds(y, 5, seed=0), "roc_auc")
    comparison = pd.DataFrame([{"family": "logistic_regression", "selected": True, "cv_mean": cv.mean,
                                "cv_std": cv.std, "train_score": 0.94, "scoring": "roc_auc", "params": "{}"}])
    cv_predictions = pd.DataFrame({"y_true": y.to_numpy(), "fold": cv.folds, "logistic_regression": cv.oof_proba})
    report, proba = evaluate_model(model, "logistic_regression", X_test, y_test, comparison, cv_predictions,
                                   BootstrapOptions(resamples=100), ThresholdRule(min_sensitivity=0.95),
                                   AcceptanceLimits())
    np.testing.assert_array_equal(proba, model.predict_proba(X_test)[:, 1])
    assert report.metrics["roc_auc"].value == pytest.approx(roc_auc_score(y_test, proba))
    assert report.fitting.test == roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert report.fitting.cv == pytest.approx(cv.mean) and report.fitting.train == 0.94
    screening = report.point("screening")
    assert screening.cv_sensitivity >= 0.95 and screening.threshold < 0.5
    assert report.test_rows == len(y_test) and report.test_positives == int(y_test.sum())
    flat = report.as_metadata()
    assert flat["verdict"] == "ok" and flat["screening_threshold"] == screening.threshold
    assert flat["roc_auc_ci_low"] < report.metrics["roc_auc"].value < flat["roc_auc_ci_high"]

    both = comparison_with_test_metrics(comparison, {"logistic_regression": model}, X_test, y_test)
    assert both.loc[0, "test_roc_auc"] == pytest.approx(report.metrics["roc_auc"].value)


def test_evaluate_model_scores_the_test_rows_with_one_prediction(heart_split, default_features, monkeypatch):
    (X, y), (X_test, y_test) = heart_split
    model = assemble_model(default_features, make_estimator("xgboost", {"n_estimators": 20}, seed=0)).fit(X, y)
    comparison = pd.DataFrame([{"family": "xgboost", "selected": True, "cv_mean": 0.9, "cv_std": 0.01,
                                "train_score": 0.95, "scoring": "roc_auc", "params": "{}"}])
    cv_predictions = pd.DataFrame({"y_true": y.to_numpy(), "xgboost": model.predict_proba(X)[:, 1]})
    expected = model.predict_proba(X_test)[:, 1]
    calls = []
    predict_proba = type(model[-1]).predict_proba
    monkeypatch.setattr(type(model[-1]), "predict_proba", lambda self, X_: calls.append(len(X_)) or
                        predict_proba(self, X_))
    report, proba = evaluate_model(model, "xgboost", X_test, y_test, comparison, cv_predictions,
                                   BootstrapOptions(resamples=20), ThresholdRule(), AcceptanceLimits())
    assert calls == [len(X_test)]  # the test score's scorer reuses the probabilities
    np.testing.assert_array_equal(proba, expected)
    assert report.fitting.test == roc_auc_score(y_test, expected)


def test_candidates_with_equal_fitted_transforms_transform_the_test_rows_once(heart_split, default_features,
                                                                            monkeypatch):
    (X, y), (X_test, _) = heart_split
    lr = assemble_model(default_features, make_estimator("logistic_regression", {}, seed=0)).fit(X, y)
    tree = pickle.loads(pickle.dumps(lr))  # the same fitted transforms, as a separately loaded artifact holds them
    tree.set_params(classifier=DecisionTreeClassifier(max_depth=3, random_state=0).fit(tree[:-1].transform(X), y))
    refitted = assemble_model(default_features, make_estimator("logistic_regression", {}, seed=0)).fit(X[:300],
                                                                                                        y[:300])
    models = {"lr": lr, "tree": tree, "refitted": refitted}
    expected = {name: model.predict_proba(X_test)[:, 1] for name, model in models.items()}
    feature_pipelines = {id(model[0]): name for name, model in models.items()}
    transformed = []
    transform = type(lr[0]).transform
    monkeypatch.setattr(type(lr[0]), "transform", lambda self, X_: transformed.append(
        feature_pipelines.get(id(self))) or transform(self, X_))
    probabilities = positive_probabilities(models, X_test)
    assert [name for name in transformed if name] == ["lr", "refitted"]  # tree shares lr's; refitted has its own
    assert probabilities.keys() == expected.keys()
    for name, proba in probabilities.items():
        np.testing.assert_array_equal(proba, expected[name])


def test_the_threshold_rule_sets_every_label_metric(heart_split, default_features):
    """One threshold: the rule's, chosen on out-of-fold predictions; metrics and points follow it."""
    (X, y), (X_test, y_test) = heart_split
    model = assemble_model(default_features, make_estimator("logistic_regression", {}, seed=0)).fit(X, y)
    cv = cross_validate(model, X, y, stratified_folds(y, 5, seed=0), "roc_auc")
    comparison = pd.DataFrame([{"family": "logistic_regression", "selected": True, "cv_mean": cv.mean,
                                "cv_std": cv.std, "train_score": 0.94, "scoring": "roc_auc", "params": "{}"}])
    oof = pd.DataFrame({"y_true": y.to_numpy(), "fold": cv.folds, "logistic_regression": cv.oof_proba})
    reports = {}
    for label, rule in (("0.5", ThresholdRule.model_validate(0.5)), ("0.3", ThresholdRule.model_validate(0.3)),
                        ("sens", ThresholdRule(rule="sensitivity", min_sensitivity=0.95))):
        reports[label], proba = evaluate_model(model, "logistic_regression", X_test, y_test, comparison, oof,
                                               BootstrapOptions(resamples=50), rule, AcceptanceLimits())
    assert (reports["0.5"].decision_threshold, reports["0.3"].decision_threshold) == (0.5, 0.3)
    assert reports["0.3"].metrics["recall"].value > reports["0.5"].metrics["recall"].value
    assert reports["0.3"].metrics["roc_auc"].value == reports["0.5"].metrics["roc_auc"].value
    assert reports["0.3"].metrics["recall"].value == pytest.approx(
        ((proba >= 0.3) & (y_test.to_numpy() == 1)).sum() / y_test.sum())
    chosen = reports["sens"]
    assert chosen.decision_threshold == threshold_for_sensitivity(y, cv.oof_proba, 0.95) < 0.5
    assert chosen.operating_points[0].name == "registered" and chosen.operating_points[0].cv_sensitivity >= 0.95
    assert [p.name for p in reports["0.3"].operating_points] == ["registered", "default", "screening"]


def test_fitting_check_calls_a_model_no_better_than_the_prevalence_underfit():
    check = check_fitting("roc_auc", 0.95, 0.93, 0.92, AcceptanceLimits(), cv_brier=0.26, prevalence_brier=0.25)
    assert check.verdict == "underfitting" and check.findings == [
        "CV Brier 0.260 is no better than the prevalence's 0.250"]
    assert check_fitting("roc_auc", 0.95, 0.93, 0.92, AcceptanceLimits(), cv_brier=0.1,
                         prevalence_brier=0.25).verdict == "ok"


def test_roc_auc_alone_bootstraps_as_the_full_metric_set():
    rng = np.random.default_rng(11)
    y = rng.random(3000) < 0.4
    proba = np.clip(0.35 * y + 0.65 * rng.random(3000), 0, 1)
    options = BootstrapOptions(resamples=250, seed=8)
    assert bootstrap_roc_auc(y, proba, options) == bootstrap_metrics(y, proba, options)[0]["roc_auc"]
    assert bootstrap_roc_auc(y, proba, options) != bootstrap_roc_auc(y, proba, BootstrapOptions(resamples=250, seed=9))
