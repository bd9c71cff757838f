"""Optional post-hoc calibration of the selected model, fitted on its out-of-fold training predictions only.

Model building already holds every training row's out-of-fold probability, so a probability map (sigmoid: a
logistic regression on the logit; isotonic: scikit-learn's IsotonicRegression) is fitted on those, never on test
rows, and kept only when it lowers the cross-fitted Brier score: map fitted on the other folds' predictions, scored
on the held-out fold's. scikit-learn's CalibratedClassifierCV(ensemble=False) does the same fit but would refit the
model `cv_folds` more times to recompute predictions that already exist.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, Field
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

Method = Literal["sigmoid", "isotonic"]
_EPS = 1e-6


class CalibrationOptions(BaseModel):
    # Tried on the selected model; the one with the lowest cross-fitted Brier score is kept if it beats none.
    # Isotonic regression overfits a few hundred rows (scikit-learn advises it from about 1,000); list it to try it.
    methods: List[Method] = Field(default_factory=lambda: ["sigmoid"])  # sigmoid | isotonic; [] never calibrates
    min_improvement: float = Field(0.0, ge=0)  # the CV Brier score must drop by more than this


class CalibrationResult(BaseModel):
    method: Literal["none", "sigmoid", "isotonic"]
    cv_brier_uncalibrated: float  # out-of-fold Brier score of the selected model as trained
    cv_brier: Dict[str, float]  # cross-fitted out-of-fold Brier score per method tried
    oof_proba: List[float]  # out-of-fold probabilities of the model as registered (calibrated if kept)


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) as a column, probabilities clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p)).reshape(-1, 1)


class ProbabilityMap(BaseEstimator):
    """P(positive) -> calibrated P(positive); fitted on held-out predictions."""

    def __init__(self, method: Method = "sigmoid"):
        self.method = method

    def fit(self, proba: np.ndarray, y: np.ndarray) -> "ProbabilityMap":
        if self.method == "sigmoid":
            self.map_ = LogisticRegression(C=1e6).fit(logit(proba), np.asarray(y).astype(int))
        else:
            self.map_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba, y)
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            return self.map_.predict_proba(logit(proba))[:, 1]
        return self.map_.predict(np.asarray(proba, dtype=float))


class CalibratedClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose P(positive) goes through a fitted ProbabilityMap (binary targets 0/1)."""

    def __init__(self, estimator: Any = None, calibration: Optional[ProbabilityMap] = None):
        self.estimator = estimator
        self.calibration = calibration

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def __sklearn_is_fitted__(self) -> bool:
        return self.estimator is not None and hasattr(self.calibration, "map_")

    def fit(self, X: Any, y: Any) -> "CalibratedClassifier":
        raise NotImplementedError("built from a fitted classifier and a fitted map; refit the classifier instead")

    def predict_proba(self, X: Any) -> np.ndarray:
        positive = self.calibration.transform(self.estimator.predict_proba(X)[:, 1])
        return np.column_stack([1 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def calibration_method(classifier: Any) -> str:
    """"sigmoid" or "isotonic" for a calibrated classifier, "none" otherwise."""
    return classifier.calibration.method if isinstance(classifier, CalibratedClassifier) else "none"


def base_classifier(classifier: Any) -> Any:
    """The trained classifier behind an optional calibration (what its parameters and tree structure are)."""
    return classifier.estimator if isinstance(classifier, CalibratedClassifier) else classifier


def choose_calibration(y: np.ndarray, oof_proba: Sequence[float], folds: Sequence[int],
                       options: CalibrationOptions) -> CalibrationResult:
    """Cross-fit each method over the model-building folds and keep the best one if it improves the Brier score."""
    y, p, folds = np.asarray(y).astype(int), np.asarray(oof_proba, dtype=float), np.asarray(folds)
    uncalibrated = float(brier_score_loss(y, p))
    scores: Dict[str, float] = {}
    crossfitted: Dict[str, np.ndarray] = {}
    for method in options.methods:
        mapped = np.empty_like(p)
        for fold in np.unique(folds):
            held_out = folds == fold
            mapped[held_out] = ProbabilityMap(method).fit(p[~held_out], y[~held_out]).transform(p[held_out])
        crossfitted[method], scores[method] = mapped, float(brier_score_loss(y, mapped))
    best = min(scores, key=scores.get, default=None)
    if best is None or uncalibrated - scores[best] <= options.min_improvement:
        return CalibrationResult(method="none", cv_brier_uncalibrated=uncalibrated, cv_brier=scores,
                                 oof_proba=p.tolist())
    return CalibrationResult(method=best, cv_brier_uncalibrated=uncalibrated, cv_brier=scores,
                             oof_proba=crossfitted[best].tolist())


def calibrated(classifier: Any, y: np.ndarray, oof_proba: Sequence[float], method: str) -> Any:
    """`classifier` behind a map fitted on all out-of-fold predictions, or itself for method "none"."""
    if method == "none":
        return classifier
    return CalibratedClassifier(classifier, ProbabilityMap(method).fit(np.asarray(oof_proba, dtype=float),
                                                                       np.asarray(y).astype(int)))
