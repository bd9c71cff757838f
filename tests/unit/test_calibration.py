"""Post-hoc calibration on out-of-fold predictions: kept only when it lowers the cross-fitted Brier score."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from heartml.core.calibration import (
    CalibratedClassifier,
    CalibrationOptions,
    ProbabilityMap,
    calibrated,
    calibration_method,
    choose_calibration,
)
from heartml.core.evaluation import calibration_fit
from heartml.core.modeling import assemble_model, make_estimator
from tests.unit.conftest import default_feature_pipeline


def overconfident(n=2000, seed=0):
    """Labels drawn from p, predictions pushed towards 0 and 1 (logit x 3): miscalibrated, well ranked."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < p).astype(int)
    logit = np.log(p / (1 - p)) * 3
    folds = np.arange(n) % 5
    return y, 1 / (1 + np.exp(-logit)), folds


def test_a_miscalibrated_model_gets_a_map_that_lowers_the_brier_score():
    y, proba, folds = overconfident()
    result = choose_calibration(y, proba, folds, CalibrationOptions(methods=["sigmoid", "isotonic"]))
    assert result.method in ("sigmoid", "isotonic")
    assert result.cv_brier[result.method] == min(result.cv_brier.values()) < result.cv_brier_uncalibrated
    assert brier_score_loss(y, result.oof_proba) == pytest.approx(result.cv_brier[result.method])
    assert calibration_fit(y, proba).slope < 0.5 and calibration_fit(y, result.oof_proba).slope == pytest.approx(
        1, abs=0.15)


def test_a_calibrated_model_is_left_alone():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 2000)
    y = (rng.uniform(size=2000) < p).astype(int)
    result = choose_calibration(y, p, np.arange(2000) % 5, CalibrationOptions(min_improvement=0.002))
    assert result.method == "none" and result.oof_proba == pytest.approx(p)
    assert choose_calibration(y, p, np.arange(2000) % 5, CalibrationOptions(methods=[])).cv_brier == {}


def test_the_calibrated_classifier_maps_the_trained_probabilities(heart_split):
    (X, y), (X_test, _) = heart_split
    model = assemble_model(default_feature_pipeline(), make_estimator("xgboost", {"n_estimators": 50}, 0)).fit(X, y)
    classifier = model.named_steps["classifier"]
    oof = np.clip(model.predict_proba(X)[:, 1] * 0.8 + 0.1, 0, 1)  # any held-out predictions
    wrapped = calibrated(classifier, y, oof, "sigmoid")
    assert isinstance(wrapped, CalibratedClassifier) and calibration_method(wrapped) == "sigmoid"
    features = model.named_steps["features"].transform(X_test)
    mapped = ProbabilityMap("sigmoid").fit(oof, y).transform(classifier.predict_proba(features)[:, 1])
    assert wrapped.predict_proba(features)[:, 1] == pytest.approx(mapped)
    assert (wrapped.predict(features) == (mapped >= 0.5)).all()
    assert calibrated(classifier, y, oof, "none") is classifier
