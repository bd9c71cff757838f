"""Candidate model families, each trained as one sklearn Pipeline: feature transforms + classifier."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import joblib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from joblib.externals.loky import get_reusable_executor
from pydantic import BaseModel
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from xgboost import XGBClassifier

FAMILIES = ("xgboost", "random_forest", "logistic_regression")
SOFT_VOTING = "soft_voting"

# Starting points before tuning (also what a family trains with when it is not tuned).
DEFAULT_PARAMS: Dict[str, Dict[str, Any]] = {
    "xgboost": dict(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, colsample_bytree=0.8,
                    eval_metric="logloss", tree_method="hist"),
    # 100 trees (scikit-learn's default): CV ROC-AUC within 0.002 of 200 or 400 trees on heart.csv, at half the
    # time of 200 in every tuning trial, SHAP value and prediction.
    "random_forest": dict(n_estimators=100, min_samples_leaf=2),
    "logistic_regression": dict(C=1.0, max_iter=5000),
}


def make_estimator(family: str, params: Dict[str, Any], seed: int, n_jobs: int = 1) -> ClassifierMixin:
    """An unfitted classifier of `family`: its defaults, overridden by `params`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    merged = {**DEFAULT_PARAMS[family], **params, "random_state": seed}  # the seed always comes from the config
    if family == "xgboost":
        return XGBClassifier(**merged, n_jobs=n_jobs)
    if family == "random_forest":
        return RandomForestClassifier(**merged, n_jobs=n_jobs)
    return LogisticRegression(**merged)


def unknown_params(family: str, names: Iterable[str]) -> List[str]:
    """Names that are not parameters of the family's estimator (XGBoost would otherwise only warn)."""
    known = make_estimator(family, {}, seed=0).get_params()
    return sorted(set(names) - set(known))


def make_soft_voting(members: Dict[str, Dict[str, Any]], seed: int) -> VotingClassifier:
    """Equal-weight average of the members' probabilities, each member with its own (tuned) parameters."""
    return VotingClassifier([(family, make_estimator(family, params, seed)) for family, params in members.items()],
                            voting="soft")


def soft_voting_of(fitted_members: Dict[str, ClassifierMixin], X: Any, y: pd.Series) -> VotingClassifier:
    """The soft vote of members already fitted on (`X`, `y`): the classifier `make_soft_voting(...).fit(X, y)` gives
    for the same parameters and seed, without fitting the members again."""
    members = [(family, FrozenEstimator(member)) for family, member in fitted_members.items()]
    return VotingClassifier(members, voting="soft").fit(X, y)


def assemble_model(feature_pipeline: Pipeline, estimator: ClassifierMixin) -> Pipeline:
    """Raw patient records in, probabilities out: every fitted transform travels with the classifier."""
    return Pipeline([("features", clone(feature_pipeline)), ("classifier", estimator)])


class CVResult(BaseModel):
    """Per-fold scores and out-of-fold probabilities of one configuration (same folds for every candidate)."""

    scores: List[float]
    oof_proba: List[float]  # P(positive) for each training row, predicted by the fold model that did not see it
    folds: List[int]  # fold number of each training row

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))


def stratified_folds(y: pd.Series, folds: int, seed: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _fit_and_score(model: Pipeline, X: pd.DataFrame, y: pd.Series, train: np.ndarray, test: np.ndarray,
                   scoring: str) -> Tuple[float, np.ndarray]:
    return _fit_and_score_on(model, X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test], scoring)


class PredictedOnce(ClassifierMixin, BaseEstimator):
    """A fitted classifier as a scorer sees it, its probabilities on the rows `X` computed once: the scorer calls
    `predict_proba` itself, and the caller's own probabilities of those rows are the same call (XGBoost's 550 trees
    on a 792k-row test fold: ~4 s each)."""

    def __init__(self, fitted: ClassifierMixin, X: Any):
        self.fitted = fitted
        self.X = X

    @property
    def classes_(self) -> np.ndarray:
        return self.fitted.classes_

    @functools.cached_property
    def known_proba(self) -> np.ndarray:
        """`predict_proba(X)`, shape (rows, classes)."""
        return self.fitted.predict_proba(self.X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.known_proba if X is self.X else self.fitted.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.fitted.predict(X)

    @available_if(lambda self: hasattr(self.fitted, "decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:  # the scorers that prefer it (roc_auc) keep using it
        return self.fitted.decision_function(X)


def _fit_and_score_on(model: ClassifierMixin, X_train: Any, y_train: pd.Series, X_test: Any, y_test: pd.Series,
                      scoring: str) -> Tuple[float, np.ndarray]:
    fitted = PredictedOnce(clone(model).fit(X_train, y_train), X_test)
    score, proba = float(get_scorer(scoring)(fitted, X_test, y_test)), fitted.known_proba[:, 1]
    del fitted
    release_freed_heap()
    return score, proba


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    library = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None


def release_freed_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`; elsewhere nothing). A fold's fit
    frees what XGBoost built for it (its float32 copy of the rows, the histograms), which glibc keeps for the
    process otherwise: 1M rows, the search's peak (process tree, PSS) 1,799 to 1,622 MiB, for a few ms a fold."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def with_threads(model: Any, threads: int) -> Any:
    """A copy of `model` whose XGBoost classifiers (alone, in a pipeline or in the vote) use `threads` threads: the
    same model and probabilities (XGBoost is deterministic in its thread count), sooner. Not random forests: their
    fit is the same, but their threaded predict_proba sums the trees in whatever order the threads finish (1e-16)."""
    model = clone(model)
    owners = [("", model), *model.get_params(deep=True).items()]
    model.set_params(**{f"{name}__n_jobs" if name else "n_jobs": threads for name, owner in owners
                        if isinstance(owner, XGBClassifier)})
    return model


def fit_with_threads(classifier: ClassifierMixin, X: Any, y: pd.Series, threads: int) -> ClassifierMixin:
    """A fitted copy of a family's `classifier`: XGBoost fitted with `threads` threads (the same model, sooner), then
    set back to `classifier`'s own thread count, so the predictions that follow (scores, explanations, serving) run
    as after a plain `fit`."""
    fitted = with_threads(classifier, threads).fit(X, y)
    if isinstance(fitted, XGBClassifier):
        fitted.set_params(n_jobs=classifier.get_params()["n_jobs"])
    return fitted


FoldCallback = Callable[[int, List[float]], None]


def cross_validate(model: Pipeline, X: pd.DataFrame, y: pd.Series, splits: Sequence[Tuple[np.ndarray, np.ndarray]],
                   scoring: str, n_jobs: int = 1, on_fold: Optional[FoldCallback] = None) -> CVResult:
    """Fold scores and out-of-fold probabilities; the whole pipeline is refitted inside every fold (no leakage).

    `on_fold(fold, scores_so_far)` is called after each fold but the last (stopping then would save nothing), in
    fold order; an exception it raises (a pruned tuning trial) stops the cross-validation there. The folds run
    `n_jobs` at a time, so a stop wastes at most one batch (cancelling joblib's process workers mid-call would kill
    and restart them)."""
    folds = [(X, y, train, test, scoring) for train, test in splits]
    return _run_folds(_fit_and_score, model, folds, [test for _, test in splits], len(y), n_jobs, on_fold)


@dataclass
class TransformedFold:
    """One CV fold with the feature transforms fitted on its training rows and applied to both of its sides."""

    X_train: Any
    y_train: pd.Series
    X_test: Any
    y_test: pd.Series
    test: np.ndarray  # row positions of the test side


class MappedFiles:
    """Values moved into memory-mapped files of a temporary folder (removed with this object), read-only: joblib
    hands a memory-mapped array to its worker processes by file name, so the CV workers and this process share one
    copy of the transformed folds, where joblib would otherwise write a copy of each batch's folds for the workers
    beside this process's own (797k rows: 403 MB kept, ~280 MB more per batch)."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="heartml-folds-", ignore_cleanup_errors=True)
        self._names = itertools.count()

    def keep(self, value: Any) -> Any:
        """`value` (a frame, an array or a sparse matrix) backed by a file of the folder instead of memory."""
        path = Path(self._folder.name) / f"{next(self._names)}.joblib"
        joblib.dump(value, path)
        return joblib.load(path, mmap_mode="r")


class TransformedFolds:
    """Stratified folds whose feature transforms are fitted once, on each fold's training rows (as `Pipeline.fit`
    fits them), for every classifier scored on those folds: the transforms do not depend on the classifier, so a
    tuning run need not refit them for every trial. The same scores and out-of-fold probabilities as
    `cross_validate` on the assembled pipeline. (Not sklearn's `Pipeline(memory=...)`: it hashes the inputs at every
    call and keeps the results on disk.) The transformed rows live in memory-mapped files (`MappedFiles`)."""

    def __init__(self, folds: List[TransformedFold], rows: int, files: Optional[MappedFiles] = None):
        self.folds, self.rows, self.files = folds, rows, files

    @classmethod
    def fit(cls, feature_pipeline: Pipeline, X: pd.DataFrame, y: pd.Series,
            splits: Sequence[Tuple[np.ndarray, np.ndarray]],
            max_bytes: Optional[int] = None) -> Optional["TransformedFolds"]:
        """The folds, or None as soon as the ones made so far show that all of them would hold over `max_bytes`."""
        folds: List[TransformedFold] = []
        files = MappedFiles()
        made = 0  # bytes of the folds so far
        for train, test in splits:
            features = clone(feature_pipeline)
            X_train, X_test = features.fit_transform(X.iloc[train], y.iloc[train]), features.transform(X.iloc[test])
            made += _nbytes(X_train) + _nbytes(X_test)
            if max_bytes is not None and made / (len(folds) + 1) * len(splits) > max_bytes:
                return None
            folds.append(TransformedFold(files.keep(X_train), y.iloc[train], files.keep(X_test), y.iloc[test], test))
        return cls(folds, len(y), files)

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(fold.X_train) + _nbytes(fold.X_test) for fold in self.folds)

    def cross_validate(self, classifier: ClassifierMixin, scoring: str, n_jobs: int = 1,
                       on_fold: Optional[FoldCallback] = None) -> CVResult:
        """As `cross_validate(assemble_model(feature_pipeline, classifier), ...)`, fitting only the classifier."""
        folds = [(f.X_train, f.y_train, f.X_test, f.y_test, scoring) for f in self.folds]
        return _run_folds(_fit_and_score_on, classifier, folds, [f.test for f in self.folds], self.rows, n_jobs,
                          on_fold)


def soft_voting_cv(members: Sequence[CVResult], y: pd.Series, scoring: str) -> CVResult:
    """The cross-validation of the soft vote of `members`, each cross-validated on the same folds: in every fold the
    vote's members are the fold models of the members' own CV (same rows, parameters and seed), so its out-of-fold
    probabilities are the mean of theirs and nothing is fitted again. The same as cross-validating
    `make_soft_voting(...)` on those folds."""
    proba = np.mean([member.oof_proba for member in members], axis=0)
    folds = np.asarray(members[0].folds)
    classes = np.unique(y)
    scorer = get_scorer(scoring)
    scores = []
    for fold in range(len(members[0].scores)):
        rows = folds == fold
        scores.append(float(scorer(_FoldProbabilities(classes, proba[rows]), np.empty((rows.sum(), 0)), y[rows])))
    return CVResult(scores=scores, oof_proba=proba.tolist(), folds=folds.tolist())


class _FoldProbabilities(ClassifierMixin, BaseEstimator):
    """One fold's fitted soft vote as a scikit-learn scorer sees it: its probabilities for the fold's test rows, and
    the class with the highest one (as `VotingClassifier.predict`); any scorer name then scores it as the vote."""

    def __init__(self, classes: np.ndarray, positive_proba: np.ndarray):
        self.classes, self.positive_proba = classes, positive_proba
        self.classes_ = classes

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.column_stack([1 - self.positive_proba, self.positive_proba])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def stop_cv_workers() -> None:
    """Stop the worker processes of the cross-validations (joblib's reusable loky pool). Left alone they stay for
    300 s after their last fold, idle but holding what they imported and allocated: at a million rows ~200 MB
    each, through the final fits and the explanations that follow."""
    get_reusable_executor().shutdown(wait=True)


def _nbytes(matrix: Any) -> int:
    if isinstance(matrix, pd.DataFrame):
        return int(matrix.memory_usage(index=False, deep=True).sum())
    return int(getattr(matrix, "nbytes", 0) or getattr(getattr(matrix, "data", None), "nbytes", 0))


def _run_folds(fit_and_score: Callable[..., Tuple[float, np.ndarray]], model: Any, folds: Sequence[tuple],
               tests: Sequence[np.ndarray], rows: int, n_jobs: int, on_fold: Optional[FoldCallback]) -> CVResult:
    """`fit_and_score(model, *fold)` for each fold, as many at a time as there are workers. A batch's lone fold (the
    last of 3 or 5 folds on 2 workers) runs in this process, XGBoost with every worker's threads, instead of leaving
    the other cores idle (XGBoost's tuning at a million rows: 65 s to 55 s)."""
    workers = effective_n_jobs(n_jobs)
    results: List[Tuple[float, np.ndarray]] = []
    with Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(folds), workers):
            batch = folds[start:start + workers]
            if len(batch) == 1 and workers > 1:
                results.append(fit_and_score(with_threads(model, workers), *batch[0]))
            else:
                results += parallel(delayed(fit_and_score)(model, *fold) for fold in batch)
            if on_fold is not None:
                for fold in range(start, min(len(results), len(folds) - 1)):
                    on_fold(fold, [score for score, _ in results[:fold + 1]])
    oof = np.empty(rows)
    fold_of_row = np.empty(rows, dtype=int)
    for number, (test, (_, proba)) in enumerate(zip(tests, results)):
        oof[test] = proba
        fold_of_row[test] = number
    return CVResult(scores=[score for score, _ in results], oof_proba=oof.tolist(), folds=fold_of_row.tolist())
