"""Evaluation on held-out data: metrics with bootstrap intervals, operating thresholds, the fitting check."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Literal, Mapping, Optional, Tuple

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    get_scorer,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import Pipeline

from heartml.core.calibration import logit
from heartml.core.dataset import AcceptanceLimits
from heartml.core.errors import InputError
from heartml.core.modeling import PredictedOnce

# The column of `cv_predictions` holding the out-of-fold probabilities of the model as registered.
SELECTED_OOF = "selected"
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "mcc", "brier")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> Dict[str, float]:
    """The flat metric dict (keys: METRICS); label metrics at `threshold`, ranking metrics over all thresholds."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    predicted = (proba >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, predicted, average="binary", zero_division=0)
    return {  # in METRICS order
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "mcc": float(matthews_corrcoef(y_true, predicted)),
        "brier": float(brier_score_loss(y_true, proba)),
    }


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap intervals


class BootstrapOptions(BaseModel):
    resamples: int = Field(1000, ge=10)  # bootstrap resamples of the test patients
    confidence: float = Field(0.95, gt=0, lt=1)  # of the percentile intervals
    seed: int = 42  # set once for the run: parameters.seed (the pipeline hands it to every step)
    n_jobs: int = Field(2, ge=1)  # threads computing the resamples' metrics (the same values at any number)


class Estimate(BaseModel):
    """A point estimate on the full test split and its percentile bootstrap interval."""

    value: float
    low: float
    high: float


# Resamples are evaluated in chunks of about this many (resample, patient) cells (one resample when the test split
# is larger), so that a chunk's arrays stay in a core's cache: 1000 resamples of 200k patients, every metric, in
# 3.6-3.7 s against 6.3 s in chunks of 1M cells (5 resamples of 8 MB of counts each), the same values (one thread).
_CHUNK_CELLS = 100_000


@dataclass(frozen=True)
class _ClassOrder:
    """The patients reordered once as [positives by probability, then negatives by probability], with, for every
    positive, where its probability falls among the negatives and among the other positives. Every metric of a
    resample then follows from cumulative counts in this order: linear work per resample, no sorting."""

    order: np.ndarray  # position in this layout -> patient index
    p_positive: np.ndarray  # sorted probabilities of the positives
    p_negative: np.ndarray  # sorted probabilities of the negatives
    negatives_below: np.ndarray  # per positive: negatives with a lower probability
    negatives_up_to: np.ndarray  # per positive: negatives with a lower or equal probability
    positives_below: np.ndarray  # per positive: positives with a lower probability

    @classmethod
    def of(cls, y_true: np.ndarray, proba: np.ndarray) -> "_ClassOrder":
        y = np.asarray(y_true).astype(bool)
        p = np.asarray(proba, dtype=float)
        positive, negative = np.flatnonzero(y), np.flatnonzero(~y)
        positive = positive[np.argsort(p[positive], kind="stable")]
        negative = negative[np.argsort(p[negative], kind="stable")]
        p_positive, p_negative = p[positive], p[negative]
        return cls(order=np.concatenate([positive, negative]), p_positive=p_positive, p_negative=p_negative,
                   negatives_below=np.searchsorted(p_negative, p_positive, "left"),
                   negatives_up_to=np.searchsorted(p_negative, p_positive, "right"),
                   positives_below=np.searchsorted(p_positive, p_positive, "left"))

    def metrics(self, counts: np.ndarray, threshold: float) -> np.ndarray:
        """METRICS of resamples given as per-patient counts in this layout's order, shape (resamples, n)."""
        drawn_positive, drawn_negative = self._halves(counts)
        positives = drawn_positive.sum(axis=1).astype(float)
        negatives = drawn_negative.sum(axis=1).astype(float)
        size = positives + negatives
        # Predicted positive (p >= threshold) is a suffix of each sorted half.
        tp = drawn_positive[:, np.searchsorted(self.p_positive, threshold, "left"):].sum(axis=1).astype(float)
        fp = drawn_negative[:, np.searchsorted(self.p_negative, threshold, "left"):].sum(axis=1).astype(float)
        fn = positives - tp
        tn = negatives - fp
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            mcc_denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
            mcc = np.where(mcc_denominator > 0, (tp * tn - fp * fn) / mcc_denominator, 0.0)
        negatives_cumulative, positives_cumulative = _cumulative(drawn_negative), _cumulative(drawn_positive)
        below = np.take(negatives_cumulative, self.negatives_below, axis=1)
        roc_auc = self._roc_auc(drawn_positive, negatives_cumulative, below, positives, negatives)
        # Average precision: recall gained at each positive's threshold x the precision there (positives and
        # negatives with at least its probability).
        true_at = positives[:, None] - np.take(positives_cumulative, self.positives_below, axis=1)
        false_at = negatives[:, None] - below
        precision_at = np.divide(true_at, true_at + false_at, out=np.zeros(true_at.shape), where=true_at > 0)
        pr_auc = (drawn_positive * precision_at).sum(axis=1) / positives
        # Products summed per row, not a matrix product: BLAS would sum in an order that depends on the chunk's rows.
        brier = ((drawn_positive * (1 - self.p_positive) ** 2).sum(axis=1)
                 + (drawn_negative * self.p_negative ** 2).sum(axis=1)) / size
        columns = {"accuracy": (tp + tn) / size, "precision": precision, "recall": tp / positives, "f1": f1,
                   "roc_auc": roc_auc, "pr_auc": pr_auc, "mcc": mcc, "brier": brier}
        return np.column_stack([columns[m] for m in METRICS])

    def roc_auc(self, counts: np.ndarray) -> np.ndarray:
        """ROC-AUC alone of resamples given as in `metrics` (what `metrics` gives in its roc_auc column)."""
        drawn_positive, drawn_negative = self._halves(counts)
        negatives_cumulative = _cumulative(drawn_negative)
        below = np.take(negatives_cumulative, self.negatives_below, axis=1)
        return self._roc_auc(drawn_positive, negatives_cumulative, below, drawn_positive.sum(axis=1).astype(float),
                             drawn_negative.sum(axis=1).astype(float))

    def _halves(self, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The counts of the positives and of the negatives (the layout's two halves)."""
        counts = np.asarray(counts, dtype=np.int64)
        return counts[:, :len(self.p_positive)], counts[:, len(self.p_positive):]

    def _roc_auc(self, drawn_positive: np.ndarray, negatives_cumulative: np.ndarray, below: np.ndarray,
                 positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
        # The Mann-Whitney statistic: each positive beats the negatives below it and half of those tied with it
        # (equal to the trapezoidal area, ties included).
        beaten = (below + np.take(negatives_cumulative, self.negatives_up_to, axis=1)) / 2
        return (drawn_positive * beaten).sum(axis=1) / (positives * negatives)


def resampled_metrics(y_true: np.ndarray, proba: np.ndarray, counts: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """METRICS for many resamples at once; returns (resamples, len(METRICS)).

    `counts[r, i]` is how often patient i was drawn in resample r, shape (resamples, n). The same definitions as
    `classification_metrics` (scikit-learn's, tested equal, ties included), without a sort per resample. Every
    resample must hold both classes.
    """
    layout = _ClassOrder.of(y_true, proba)
    return layout.metrics(np.asarray(counts)[:, layout.order], threshold)


def _cumulative(drawn: np.ndarray) -> np.ndarray:
    """Cumulative counts with a leading 0: column j = drawn patients among the first j of that class."""
    return np.concatenate([np.zeros((len(drawn), 1), dtype=np.int64), np.cumsum(drawn, axis=1)], axis=1)


def _percentiles(values: np.ndarray, confidence: float) -> Tuple[Any, Any]:
    """The percentile interval holding `confidence` of `values` (per column)."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return low, high


def _resampled(y_true: np.ndarray, proba: np.ndarray, options: BootstrapOptions,
               statistic: Callable[[_ClassOrder, np.ndarray], np.ndarray]) -> np.ndarray:
    """`statistic(layout, counts)` of `options.resamples` bootstrap resamples of the patients, those holding a single
    class left out (no ROC-AUC); one row per resample kept.

    Each resample is drawn as n patient positions and kept as per-patient counts, a chunk of resamples at a time, so
    a test split of 200k patients needs a few MB. The draws are made in order in this thread (the same resamples at
    any `n_jobs`); `options.n_jobs` threads count and evaluate the chunks (NumPy's arithmetic releases the GIL):
    1000 resamples of 200k patients, every metric, 3.7-5.3 s at n_jobs=1 (one thread evaluating beside the drawing
    one) and 2.5-3.0 s at 2; ROC-AUC alone, whose draws are most of its time, 1.65-1.8 s and 1.4-1.5 s."""
    n = len(y_true)
    layout = _ClassOrder.of(y_true, proba)
    rng = np.random.default_rng(options.seed)
    chunk = max(1, _CHUNK_CELLS // n)

    def evaluate(positions: List[np.ndarray]) -> np.ndarray:
        counts = np.stack([np.bincount(drawn, minlength=n) for drawn in positions])
        drawn_positive = counts[:, :len(layout.p_positive)].sum(axis=1)
        return statistic(layout, counts[(drawn_positive > 0) & (drawn_positive < n)])

    parts: List[np.ndarray] = []
    # A window of chunks in flight, not Executor.map: it would draw every resample before the first is evaluated.
    pending: Deque[Any] = deque()
    with ThreadPoolExecutor(options.n_jobs) as pool:
        for first in range(0, options.resamples, chunk):
            positions = [rng.integers(0, n, n) for _ in range(min(chunk, options.resamples - first))]
            pending.append(pool.submit(evaluate, positions))
            if len(pending) > 2 * options.n_jobs:  # every thread busy, as many chunks drawn ahead
                parts.append(pending.popleft().result())
        parts.extend(future.result() for future in pending)
    return np.concatenate(parts)


def bootstrap_roc_auc(y_true: np.ndarray, proba: np.ndarray, options: BootstrapOptions) -> Estimate:
    """ROC-AUC and its percentile interval: `bootstrap_metrics(...)`'s roc_auc, computing nothing else."""
    low, high = _percentiles(_resampled(np.asarray(y_true), proba, options, _ClassOrder.roc_auc), options.confidence)
    return Estimate(value=float(roc_auc_score(y_true, proba)), low=float(low), high=float(high))


def bootstrap_metrics(
    y_true: np.ndarray, proba: np.ndarray, options: BootstrapOptions, threshold: float = 0.5
) -> Tuple[Dict[str, Estimate], int]:
    """Percentile bootstrap over test patients (see `_resampled`); resamples holding a single class are skipped.
    Returns the estimates and the number of resamples used."""
    y_true = np.asarray(y_true)
    values = _resampled(y_true, proba, options, lambda layout, counts: layout.metrics(counts, threshold))
    low, high = _percentiles(values, options.confidence)
    point = classification_metrics(y_true, proba, threshold)
    estimates = {m: Estimate(value=point[m], low=float(low[i]), high=float(high[i])) for i, m in enumerate(METRICS)}
    return estimates, len(values)


# ---------------------------------------------------------------------------------------------------------------
# The decision threshold and the operating points beside it


class ThresholdRule(BaseModel):
    """How the one decision threshold is chosen: the test metrics, confusion matrix, gate, model card and inference
    all use the threshold this rule gives, which is registered with the version. A bare number is a fixed rule."""

    rule: Literal["fixed", "sensitivity"] = "fixed"  # fixed: `value`; sensitivity: chosen on out-of-fold predictions
    value: float = Field(0.5, gt=0, lt=1)  # the threshold of the fixed rule
    # Rule sensitivity: the highest threshold whose sensitivity on out-of-fold training predictions reaches this.
    # Either rule also reports this "screening" operating point beside the registered one.
    min_sensitivity: float = Field(0.9, gt=0, le=1)  # sensitivity rule and screening point, out of fold

    @model_validator(mode="before")
    @classmethod
    def _number_is_fixed(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"rule": "fixed", "value": value}
        return value

    def choose(self, y_oof: np.ndarray, proba_oof: np.ndarray) -> float:
        """The threshold, from out-of-fold predictions of the training split (never from test rows)."""
        if self.rule == "fixed":
            return self.value
        return threshold_for_sensitivity(y_oof, proba_oof, self.min_sensitivity)

    def describe(self) -> str:
        if self.rule == "fixed":
            return f"fixed at {self.value:g}"
        return _screening_rule(self.min_sensitivity)


def _screening_rule(min_sensitivity: float) -> str:
    return f"highest threshold with out-of-fold sensitivity >= {min_sensitivity:g}"


class OperatingPoint(BaseModel):
    name: str  # "registered" (the decision threshold), "default" (0.5), "screening"
    threshold: float
    rule: str
    cv_sensitivity: float  # on out-of-fold predictions of the training split (where the threshold was chosen)
    cv_specificity: float
    test_sensitivity: float
    test_specificity: float
    test_precision: float


def sensitivity_specificity(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> Tuple[float, float]:
    y_true = np.asarray(y_true).astype(bool)
    predicted = np.asarray(proba) >= threshold
    sensitivity = (predicted & y_true).sum() / max(y_true.sum(), 1)
    specificity = (~predicted & ~y_true).sum() / max((~y_true).sum(), 1)
    return float(sensitivity), float(specificity)


def threshold_for_sensitivity(y_true: np.ndarray, proba: np.ndarray, min_sensitivity: float) -> float:
    """The highest threshold (so the best specificity) at which sensitivity is at least `min_sensitivity`."""
    _, tpr, thresholds = roc_curve(y_true, proba, drop_intermediate=False)
    reached = np.flatnonzero(tpr >= min_sensitivity)
    return float(min(thresholds[reached[0]], 1.0))


def operating_points(
    y_cv: np.ndarray, proba_cv: np.ndarray, y_test: np.ndarray, proba_test: np.ndarray, rule: ThresholdRule
) -> List[OperatingPoint]:
    """The registered threshold first, then 0.5 and the screening threshold where they differ from it; every
    threshold chosen on training-split out-of-fold predictions, never on test."""
    candidates = [("registered", rule.choose(y_cv, proba_cv), rule.describe()),
                  ("default", 0.5, "fixed at 0.5"),
                  ("screening", threshold_for_sensitivity(y_cv, proba_cv, rule.min_sensitivity),
                   _screening_rule(rule.min_sensitivity))]
    points: List[OperatingPoint] = []
    for name, threshold, description in candidates:
        if any(np.isclose(p.threshold, threshold) for p in points):
            continue
        cv_sens, cv_spec = sensitivity_specificity(y_cv, proba_cv, threshold)
        test_sens, test_spec = sensitivity_specificity(y_test, proba_test, threshold)
        flagged = np.asarray(proba_test) >= threshold
        precision = float(np.asarray(y_test)[flagged].mean()) if flagged.any() else 0.0
        points.append(OperatingPoint(name=name, threshold=threshold, rule=description, cv_sensitivity=cv_sens,
                                     cv_specificity=cv_spec, test_sensitivity=test_sens,
                                     test_specificity=test_spec, test_precision=precision))
    return points


# ---------------------------------------------------------------------------------------------------------------
# Calibration


class CalibrationFit(BaseModel):
    """Logistic recalibration of the logit on held-out rows: slope 1 and intercept 0 when calibrated."""

    slope: float  # < 1: predictions too extreme (overfit); > 1: too timid
    intercept: float  # calibration in the large, on the logit scale


def calibration_fit(y_true: np.ndarray, proba: np.ndarray) -> CalibrationFit:
    recalibration = LogisticRegression(C=np.inf).fit(logit(proba), np.asarray(y_true).astype(int))  # unpenalized
    return CalibrationFit(slope=float(recalibration.coef_[0, 0]), intercept=float(recalibration.intercept_[0]))


# ---------------------------------------------------------------------------------------------------------------
# Over/underfitting check


Verdict = Literal["ok", "overfitting", "underfitting"]


class FittingCheck(BaseModel):
    scoring: str
    train: float
    cv: float
    test: float
    train_cv_gap: float
    cv_test_gap: float
    cv_brier: Optional[float] = None  # out-of-fold Brier score of the model as registered (calibrated or not)
    prevalence_brier: Optional[float] = None  # Brier score of predicting the training prevalence for everyone
    limits: AcceptanceLimits
    verdict: Verdict
    findings: List[str]


def check_fitting(scoring: str, train: float, cv: float, test: float, limits: AcceptanceLimits,
                  cv_brier: Optional[float] = None, prevalence_brier: Optional[float] = None) -> FittingCheck:
    """Overfitting if a gap exceeds its limit; otherwise underfitting if any score is under the floor, or if the
    out-of-fold Brier score does not beat predicting the prevalence (a reference that travels with the data)."""
    gaps = {"train-CV": (train - cv, limits.max_train_cv_gap), "CV-test": (cv - test, limits.max_cv_test_gap)}
    overfit = [f"{name} gap {gap:.3f} > {limit:g}" for name, (gap, limit) in gaps.items() if gap > limit]
    weak = [f"{name} {scoring} {score:.3f} < {limits.min_score:g}"
            for name, score in (("train", train), ("CV", cv), ("test", test)) if score < limits.min_score]
    if cv_brier is not None and prevalence_brier is not None and cv_brier >= prevalence_brier:
        weak.append(f"CV Brier {cv_brier:.3f} is no better than the prevalence's {prevalence_brier:.3f}")
    verdict: Verdict = "overfitting" if overfit else "underfitting" if weak else "ok"
    return FittingCheck(scoring=scoring, train=train, cv=cv, test=test, train_cv_gap=train - cv,
                        cv_test_gap=cv - test, cv_brier=cv_brier, prevalence_brier=prevalence_brier, limits=limits,
                        verdict=verdict, findings=overfit + weak)


class QualityGateError(InputError):
    """The trained model fails the configured quality gate; nothing is registered."""

    exit_code = 3


def enforce_quality_gate(check: FittingCheck, model_name: str) -> None:
    if check.verdict != "ok":
        raise QualityGateError(
            f"quality gate: model '{model_name}' is {check.verdict}: {'; '.join(check.findings)} "
            f"(limits: `acceptance` in the dataset description; disable with quality_gate.enabled: false)"
        )


# ---------------------------------------------------------------------------------------------------------------


class EvaluationReport(BaseModel):
    """Everything the evaluation found about the selected model; consumed by registration and model cards."""

    model_name: str  # the selected candidate (family or "soft_voting")
    test_rows: int
    test_positives: int
    decision_threshold: float  # registered with the version; every label metric here is at this threshold
    threshold_rule: str
    metrics: Dict[str, Estimate]  # keys: METRICS, label metrics at `decision_threshold`
    confidence: float
    bootstrap_resamples: int
    operating_points: List[OperatingPoint]  # the registered threshold first
    calibration: CalibrationFit  # of the test probabilities
    calibration_method: str = "none"  # post-hoc calibration kept by model building: none | sigmoid | isotonic
    fitting: FittingCheck

    def point_estimates(self) -> Dict[str, float]:
        """The flat metric dict (keys: METRICS) at the decision threshold: each estimate's full-split value."""
        return {name: estimate.value for name, estimate in self.metrics.items()}

    def point(self, name: str) -> Optional[OperatingPoint]:
        return next((p for p in self.operating_points if p.name == name), None)

    def as_metadata(self) -> Dict[str, object]:
        """Flat values for ZenML metadata and MLflow (numbers and short strings only)."""
        flat: Dict[str, object] = {"model_name": self.model_name, "verdict": self.fitting.verdict,
                                   "findings": "; ".join(self.fitting.findings) or "none",
                                   "decision_threshold": self.decision_threshold, "threshold_rule": self.threshold_rule,
                                   "calibration_method": self.calibration_method,
                                   "calibration_slope": self.calibration.slope,
                                   "calibration_intercept": self.calibration.intercept}
        for name, estimate in self.metrics.items():
            flat[f"{name}_ci_low"], flat[f"{name}_ci_high"] = estimate.low, estimate.high
        for point in self.operating_points:
            flat[f"{point.name}_threshold"] = point.threshold
            flat[f"{point.name}_test_sensitivity"] = point.test_sensitivity
            flat[f"{point.name}_test_specificity"] = point.test_specificity
        flat.update({"train_cv_gap": self.fitting.train_cv_gap, "cv_test_gap": self.fitting.cv_test_gap})
        return flat


def prevalence_brier(y: np.ndarray) -> float:
    """The Brier score of predicting the prevalence for every patient: p(1 - p)."""
    prevalence = float(np.mean(np.asarray(y)))
    return prevalence * (1 - prevalence)


def evaluate_model(
    model: Pipeline,
    model_name: str,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    comparison: pd.DataFrame,
    cv_predictions: pd.DataFrame,
    bootstrap: BootstrapOptions,
    threshold_rule: ThresholdRule,
    acceptance: AcceptanceLimits,
    calibration_method: str = "none",
) -> Tuple[EvaluationReport, np.ndarray]:
    """The report of the selected model and its test probabilities.

    `comparison` and `cv_predictions` come from model building: its training and CV scores, and the out-of-fold
    probabilities of the model as it is registered (column SELECTED_OOF; calibrated when calibration was kept),
    where the decision threshold is chosen.
    """
    # The pipeline's own two stages, the test rows transformed once for both (what model.predict_proba does).
    features, classifier = model[:-1], model[-1]
    X_transformed = features.transform(X_test)
    scored = PredictedOnce(classifier, X_transformed)  # the scorer below uses these probabilities too
    proba = scored.known_proba[:, 1]
    y = np.asarray(y_test)
    row = comparison.set_index("family").loc[model_name]
    scoring = str(row["scoring"])
    test_score = float(get_scorer(scoring)(scored, X_transformed, y_test))
    y_cv = cv_predictions["y_true"].to_numpy()
    proba_cv = cv_predictions[SELECTED_OOF if SELECTED_OOF in cv_predictions else model_name].to_numpy()
    threshold = threshold_rule.choose(y_cv, proba_cv)
    estimates, used = bootstrap_metrics(y, proba, bootstrap, threshold)
    report = EvaluationReport(
        model_name=model_name,
        test_rows=len(y),
        test_positives=int(y.sum()),
        decision_threshold=threshold,
        threshold_rule=threshold_rule.describe(),
        metrics=estimates,
        confidence=bootstrap.confidence,
        bootstrap_resamples=used,
        operating_points=operating_points(y_cv, proba_cv, y, proba, threshold_rule),
        calibration=calibration_fit(y, proba),
        calibration_method=calibration_method,
        fitting=check_fitting(scoring, float(row["train_score"]), float(row["cv_mean"]), test_score, acceptance,
                              cv_brier=float(brier_score_loss(y_cv, proba_cv)),
                              prevalence_brier=prevalence_brier(y_cv)),
    )
    return report, proba


def comparison_with_test_metrics(comparison: pd.DataFrame, models: Mapping[str, Pipeline], X_test: pd.DataFrame,
                                 y_test: pd.Series, threshold: float = 0.5) -> pd.DataFrame:
    """The model-building comparison plus every candidate's test metrics (reported, never used to select), label
    metrics at the registered threshold."""
    test = pd.DataFrame([
        {"family": name, **{f"test_{k}": v for k, v in classification_metrics(y_test, proba, threshold).items()}}
        for name, proba in positive_probabilities(models, X_test).items()
    ])
    return comparison.merge(test, on="family", how="left")


def positive_probabilities(models: Mapping[str, Pipeline], X: pd.DataFrame) -> Dict[str, np.ndarray]:
    """Each model's P(positive) on `X`, shape (len(X),), as its `predict_proba` gives it, with `X` transformed once
    per distinct fitted feature pipeline: model building fits one for every candidate, and at 200k test rows the
    transforms cost more than a classifier's prediction."""
    transformed: Dict[str, Any] = {}
    probabilities = {}
    for name, model in models.items():
        features = model[:-1]
        key = joblib.hash(features)  # equal fitted pipelines hash equal, also as separately loaded copies
        if key not in transformed:
            transformed[key] = features.transform(X)
        probabilities[name] = model[-1].predict_proba(transformed[key])[:, 1]
    return probabilities
