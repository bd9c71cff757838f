"""Hyperparameter search (each method on a tiny budget), model selection and its reproducibility."""

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from heartml.core.modeling import CVResult
from heartml.core.selection import ModelingOptions, select_model
from heartml.core.tuning import ParamSpec, TuningOptions, grid_size, search_space, tune

SPACE = {
    "C": ParamSpec(type="float", low=0.01, high=10, log=True),
    "class_weight": ParamSpec(type="categorical", choices=[None, "balanced"]),
}


def fake_evaluate(params):
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


def test_selection_picks_the_best_cv_candidate_and_fits_every_candidate(heart_split, default_features):
    (X, y), (X_test, _) = heart_split
    features = default_features
    selection = select_model(X, y, features, ModelingOptions(**TINY))
    comparison = selection.comparison()
    assert list(comparison["family"]) == sorted(selection.candidates, key=lambda n: -selection.candidates[n].cv.mean)
    assert set(comparison["family"]) == {"xgboost", "logistic_regression", "soft_voting"}
    assert comparison.loc[0, "selected"] and comparison["selected"].sum() == 1
    assert selection.selected == comparison.loc[0, "family"]
    assert (comparison.loc[comparison.family != "soft_voting", "tuning_trials"] == 3).all()
    assert json.loads(comparison.set_index("family").loc["xgboost", "params"])["max_depth"] in (2, 3, 4)
    for name, model in selection.models.items():
        assert model.predict_proba(X_test).shape == (len(X_test), 2), name
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
