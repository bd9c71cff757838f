"""Hyperparameter search (each method on a tiny budget), model selection and its reproducibility."""

import json

import numpy as np
import pandas as pd
import psutil
import pytest
from pydantic import ValidationError
from sklearn.metrics import get_scorer

from heartml.core.modeling import CVResult, assemble_model
from heartml.core.selection import ModelingOptions, select_model
from heartml.core.tuning import ParamSpec, TuningOptions, grid_size, search_space, tune

SPACE = {
    "C": ParamSpec(type="float", low=0.01, high=10, log=True),
    "class_weight": ParamSpec(type="categorical", choices=[None, "balanced"]),
}


def fake_evaluate(params, on_fold=None):
    """A deterministic objective with a known optimum (C = 1, balanced)."""
    import math

    score = 0.9 - 0.01 * math.log10(params["C"]) ** 2 + (0.01 if params["class_weight"] == "balanced" else 0)
    return CVResult(scores=[score, score], oof_proba=[0.5], folds=[0])


@pytest.mark.parametrize("method", ["optuna", "random", "grid"])
def test_each_search_method_tunes_a_family_in_real_cv_on_a_tiny_budget(heart_split, default_features, method):
    (X, y), _ = heart_split
    options = ModelingOptions(families=["logistic_regression"], soft_voting=False, cv_folds=3, seed=1,
                              tuning={"method": method, "n_trials": 3, "progress_bar": False})
    candidate = select_model(X, y, default_features, options).candidates["logistic_regression"]
    result = candidate.tuning
    assert result.method == method and len(result.trials) == 3 and not result.stopped_by_timeout
    for trial in result.trials:
        assert 0.001 <= trial.params["C"] <= 10 and trial.params["class_weight"] in (None, "balanced")
        assert 0.85 < trial.cv_mean < 1
    assert result.cv.mean == max(t.cv_mean for t in result.trials) > 0.9
    assert len(result.cv.scores) == 3 and len(result.cv.oof_proba) == len(y)
    assert {k: candidate.params[k] for k in result.best_params} == result.best_params


def test_grid_search_stops_when_the_grid_is_exhausted():
    options = TuningOptions(method="grid", n_trials=100, grid_points=3, progress_bar=False)
    assert grid_size(SPACE, 3) == 6
    result = tune("logistic_regression", SPACE, fake_evaluate, options, seed=0)
    tried = sorted((round(t.params["C"], 3), str(t.params["class_weight"])) for t in result.trials)
    assert tried == sorted((c, w) for c in (0.01, 0.316, 10.0) for w in ("None", "balanced"))
    assert result.best_params["class_weight"] == "balanced" and result.best_params["C"] == pytest.approx(0.316, 1e-2)


@pytest.mark.parametrize("method", ["optuna", "random", "grid"])
def test_the_same_seed_samples_the_same_trials(method):
    options = TuningOptions(method=method, n_trials=5, progress_bar=False)
    first, second = (tune("lr", SPACE, fake_evaluate, options, seed=7) for _ in range(2))
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    other = tune("lr", SPACE, fake_evaluate, options, seed=8)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_search_spaces_are_validated():
    with pytest.raises(ValidationError, match="needs `choices`"):
        ParamSpec(type="categorical")
    with pytest.raises(ValidationError, match="needs `low` <= `high`"):
        ParamSpec(type="float", low=2, high=1)
    with pytest.raises(ValidationError, match="unknown model families"):
        ModelingOptions(families=["svm"])
    with pytest.raises(ValidationError, match="not a scikit-learn scorer"):
        ModelingOptions(scoring="auc")
    with pytest.raises(ValidationError, match=r"search_spaces.xgboost: \['max_dpeth'\] are not parameters of XGB"):
        ModelingOptions(tuning={"search_spaces": {"xgboost": {"max_dpeth": {"type": "int", "low": 2, "high": 4}}}})
    with pytest.raises(ValidationError, match=r"params: unknown model family 'svm'"):
        ModelingOptions(params={"svm": {"C": 1}})
    override = {"xgboost": {"max_depth": ParamSpec(type="int", low=2, high=3)}}
    assert list(search_space("xgboost", override)) == ["max_depth"]
    assert "learning_rate" in search_space("xgboost", {})


TINY = dict(families=["xgboost", "logistic_regression"], cv_folds=3, seed=5, n_jobs=2,
            tuning={"method": "optuna", "n_trials": 3, "progress_bar": False,
                    "search_spaces": {"xgboost": {"n_estimators": {"type": "int", "low": 20, "high": 60},
                                                  "max_depth": {"type": "int", "low": 2, "high": 4}}}})


def _cv_workers():
    return [p for p in psutil.Process().children(recursive=True) if "LokyProcess" in " ".join(p.cmdline())]


def test_selection_picks_the_best_cv_candidate_and_fits_every_candidate(heart_split, default_features):
    (X, y), (X_test, _) = heart_split
    features = default_features
    workers_after_each_family = []
    selection = select_model(X, y, features, ModelingOptions(**TINY),
                             on_family_done=lambda candidate: workers_after_each_family.append(len(_cv_workers())))
    assert workers_after_each_family == [2, 2] and _cv_workers() == []  # stopped once the search is over
    comparison = selection.comparison()
    assert list(comparison["family"]) == sorted(selection.candidates, key=lambda n: -selection.candidates[n].cv.mean)
    assert set(comparison["family"]) == {"xgboost", "logistic_regression", "soft_voting"}
    assert comparison.loc[0, "selected"] and comparison["selected"].sum() == 1
    assert selection.selected == comparison.loc[0, "family"]
    assert (comparison.loc[comparison.family != "soft_voting", "tuning_trials"] == 3).all()
    assert json.loads(comparison.set_index("family").loc["xgboost", "params"])["max_depth"] in (2, 3, 4)
    for name, model in selection.models.items():
        assert model.predict_proba(X_test).shape == (len(X_test), 2), name
        # Transforms fitted once, classifiers in threads, the vote from its fitted members: as fitting each alone.
        alone = assemble_model(features, selection.candidates[name].estimator(TINY["seed"])).fit(X, y)
        assert (model.predict_proba(X_test) == alone.predict_proba(X_test)).all(), name
        assert selection.candidates[name].train_score == get_scorer("roc_auc")(alone, X, y), name
    cv_predictions = selection.cv_predictions(y)
    assert list(cv_predictions.columns) == ["y_true", "fold", "xgboost", "logistic_regression", "soft_voting",
                                            "selected"]
    # The model as registered: calibrated (cross-fitted out of fold) only where that lowered the CV Brier score.
    calibration = selection.calibration
    selected_oof = cv_predictions[selection.selected]
    if calibration.method == "none":
        assert (cv_predictions["selected"] == selected_oof).all()
    else:
        assert calibration.cv_brier[calibration.method] < calibration.cv_brier_uncalibrated
        assert ((cv_predictions["selected"] - y) ** 2).mean() == pytest.approx(calibration.cv_brier[calibration.method])
    assert len(cv_predictions) == len(X) and cv_predictions["y_true"].tolist() == y.tolist()


def test_same_config_and_seed_give_identical_models_and_metrics(heart_split, default_features):
    """Reproducibility at the function level: two full selections, same config -> the same numbers."""
    (X, y), (X_test, _) = heart_split
    features = default_features
    runs = [select_model(X, y, features, ModelingOptions(**TINY)) for _ in range(2)]
    timing = ["cv_seconds", "fit_seconds"]
    pd.testing.assert_frame_equal(runs[0].comparison().drop(columns=timing), runs[1].comparison().drop(columns=timing))
    first, second = (r.model.predict_proba(X_test)[:, 1] for r in runs)
    assert (first == second).all()
    changed = select_model(X, y, features, ModelingOptions(**{**TINY, "seed": 6}))
    assert changed.comparison()["cv_mean"].tolist() != runs[0].comparison()["cv_mean"].tolist()


def test_a_training_split_too_large_to_keep_its_folds_selects_the_same_model(heart_split, default_features,
                                                                           monkeypatch):
    """Above `kept_folds_limit()` every trial refits the transforms in its folds: slower, same numbers."""
    import heartml.core.selection as selection

    (X, y), (X_test, _) = heart_split
    X = X.copy()
    X.loc[X.sample(frac=0.1, random_state=0).index, "ChestPainType"] = np.nan  # missing text values too
    kept = select_model(X, y, default_features, ModelingOptions(**TINY))
    monkeypatch.setattr(selection, "kept_folds_limit", lambda: 1)
    problem = selection.TuningProblem(X, y, default_features, ModelingOptions(**TINY))
    assert problem.transformed_folds() is None
    text = [column for column in X.columns if X[column].dtype == object]
    assert text and all(isinstance(problem._categorized_X()[column].dtype, pd.CategoricalDtype) for column in text)
    refitted = select_model(X, y, default_features, ModelingOptions(**TINY))
    timing = ["cv_seconds", "fit_seconds"]
    pd.testing.assert_frame_equal(kept.comparison().drop(columns=timing), refitted.comparison().drop(columns=timing))
    assert (kept.model.predict_proba(X_test) == refitted.model.predict_proba(X_test)).all()


def folded_evaluate(params, on_fold=None, folds=5):
    """Five folds whose scores grow with C: trials with a small C are worse at every fold."""
    import math

    scores = []
    for fold in range(folds):
        scores.append(0.8 + 0.02 * math.log10(params["C"]) + 0.001 * fold)
        if on_fold and fold < folds - 1:  # as cross_validate: not after the last fold
            on_fold(fold, list(scores))
    return CVResult(scores=scores, oof_proba=[0.5], folds=[0])


def test_trials_below_the_median_after_a_fold_are_pruned_and_never_chosen():
    options = TuningOptions(n_trials=20, pruning={"startup_trials": 3, "warmup_folds": 1}, progress_bar=False)
    result = tune("lr", SPACE, folded_evaluate, options, seed=3)
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert len(result.trials) == 20 and 3 <= len(pruned) < 20
    assert all(t.folds < 5 for t in pruned) and all(t.folds == 5 for t in result.completed)
    assert all(t.number >= 3 for t in pruned)  # the startup trials always run to the end
    assert result.best_trial in [t.number for t in result.completed] and len(result.cv.scores) == 5
    unpruned = tune("lr", SPACE, folded_evaluate, options.model_copy(update={"pruning": None}), seed=3)
    assert [t.state for t in unpruned.trials] == ["complete"] * 20
    # Pruning only stops trials early: the same sampled points, and the best one is kept.
    assert [t.params for t in unpruned.trials] == [t.params for t in result.trials]
    assert result.best_params == unpruned.best_params


def test_the_first_trial_is_the_given_parameters_that_fit_the_space():
    options = TuningOptions(n_trials=4, progress_bar=False)
    result = tune("lr", SPACE, fake_evaluate, options, seed=1, first_trials=[{"C": 0.5, "class_weight": "balanced",
                                                                              "max_iter": 5000}])
    assert result.trials[0].params == {"C": 0.5, "class_weight": "balanced"} and len(result.trials) == 4
    outside = tune("lr", SPACE, fake_evaluate, options, seed=1, first_trials=[{"C": 50.0, "class_weight": "balanced"}])
    assert outside.trials[0].params["class_weight"] == "balanced" and outside.trials[0].params["C"] <= 10


def test_cross_validation_reports_each_fold_in_order_and_stops_when_told(heart_split, default_features):
    from heartml.core.modeling import assemble_model, cross_validate, make_estimator, stratified_folds

    (X, y), _ = heart_split
    model = assemble_model(default_features, make_estimator("logistic_regression", {}, 0))
    splits = stratified_folds(y, 5, seed=0)
    seen = []
    result = cross_validate(model, X, y, splits, "roc_auc", n_jobs=2, on_fold=lambda f, s: seen.append((f, len(s))))
    assert seen == [(fold, fold + 1) for fold in range(4)]  # not after the last: nothing left to save
    assert result.scores == cross_validate(model, X, y, splits, "roc_auc").scores

    class Stop(Exception):
        pass

    def stop_after_two(fold, scores):
        seen.append(fold)
        if fold == 1:
            raise Stop

    seen.clear()
    with pytest.raises(Stop):
        cross_validate(model, X, y, splits, "roc_auc", n_jobs=2, on_fold=stop_after_two)
    assert seen == [0, 1]


def test_a_shared_storage_must_be_safe_for_several_workers_and_hold_no_password(monkeypatch):
    with pytest.raises(ValidationError, match="SQLite is not safe for several tuning workers"):
        TuningOptions(storage="sqlite:///optuna.db")
    with pytest.raises(ValidationError, match="the URL holds a password"):
        TuningOptions(storage="postgresql+psycopg2://optuna:secret@db/optuna")
    with pytest.raises(ValidationError, match="is not an SQLAlchemy database URL"):
        TuningOptions(storage="not a url")
    assert TuningOptions(storage="postgresql://optuna@db/optuna").storage_url() == "postgresql://optuna@db/optuna"
    monkeypatch.delenv("HEARTML_TUNING_STORAGE", raising=False)
    with pytest.raises(ValueError, match="HEARTML_TUNING_STORAGE is not set"):
        TuningOptions(storage="$HEARTML_TUNING_STORAGE").storage_url()
    monkeypatch.setenv("HEARTML_TUNING_STORAGE", "postgresql://optuna:secret@db/optuna")  # the environment may
    assert TuningOptions(storage="$HEARTML_TUNING_STORAGE").storage_url().endswith(":secret@db/optuna")
    monkeypatch.setenv("HEARTML_TUNING_STORAGE", "sqlite:///x.db")
    with pytest.raises(ValueError, match="SQLite is not safe"):
        TuningOptions(storage="$HEARTML_TUNING_STORAGE").storage_url()


def test_queued_trials_run_first_and_count_once_against_the_budget():
    options = TuningOptions(n_trials=3, pruning=None, progress_bar=False)
    queued = [{"C": 0.1, "class_weight": None}, {"C": 2.0, "class_weight": "balanced"},
              {"C": 5.0, "class_weight": None}]
    result = tune("lr", SPACE, fake_evaluate, options, seed=0, first_trials=queued)
    assert [t.params for t in result.trials] == queued
    more = tune("lr", SPACE, fake_evaluate, options.model_copy(update={"n_trials": 5}), seed=0, first_trials=queued)
    assert [t.params for t in more.trials][:3] == queued and len(more.trials) == 5
