"""Model building: tune every configured family, optionally add their soft-voting ensemble, pick the best on
cross-validation, and fit every candidate on the whole training split.

Every candidate is scored on the same stratified folds, so CV means are comparable and the out-of-fold
probabilities line up row by row.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

import pandas as pd
from joblib import Parallel, delayed
from pydantic import BaseModel, Field, field_validator, model_validator
from sklearn.base import ClassifierMixin, clone
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.pipeline import Pipeline

from heartml.core.calibration import CalibrationOptions, CalibrationResult, calibrated, choose_calibration
from heartml.core.evaluation import SELECTED_OOF
from heartml.core.modeling import (
    DEFAULT_PARAMS,
    FAMILIES,
    SOFT_VOTING,
    CVResult,
    FoldCallback,
    TransformedFolds,
    assemble_model,
    cross_validate,
    fit_with_threads,
    make_estimator,
    make_soft_voting,
    soft_voting_cv,
    soft_voting_of,
    stop_cv_workers,
    stratified_folds,
    unknown_params,
)
from heartml.core.tuning import (
    SearchSpace,
    SharedStudy,
    TuningOptions,
    TuningResult,
    search_space,
    tune,
)


class ModelingOptions(BaseModel):
    families: List[str] = Field(default_factory=lambda: list(FAMILIES))  # xgboost, random_forest, logistic_regression
    # Fixed parameters per family: applied as given and never searched.
    params: Dict[str, Dict[str, Any]] = Field(default_factory=dict)  # per family, fixed and never searched
    tuning: Optional[TuningOptions] = Field(default_factory=TuningOptions)  # null: train with defaults + params
    soft_voting: bool = True  # also try the equal-weight average of the (tuned) families
    # Post-hoc calibration of the selected model on its out-of-fold predictions; null: never.
    calibration: Optional[CalibrationOptions] = Field(default_factory=CalibrationOptions)  # null: never calibrate
    cv_folds: int = Field(5, ge=2)  # stratified folds of the training split
    scoring: str = "roc_auc"  # a scikit-learn scorer name; the tuning objective and the selection criterion
    seed: int = 42  # set once for the run: parameters.seed (the pipeline hands it to every step)
    n_jobs: int = Field(1, ge=1)  # CV folds fitted in parallel; each classifier itself is single-threaded

    @field_validator("families")
    @classmethod
    def _known_families(cls, families: List[str]) -> List[str]:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown model families {unknown} (known: {', '.join(FAMILIES)})")
        return families

    @field_validator("scoring")
    @classmethod
    def _known_scorer(cls, scoring: str) -> str:
        if scoring not in get_scorer_names():
            raise ValueError(f"scoring {scoring!r} is not a scikit-learn scorer name")
        return scoring

    @model_validator(mode="after")
    def _check_overrides(self) -> "ModelingOptions":
        spaces = self.tuning.search_spaces if self.tuning else {}
        for kind, per_family in (("params", self.params), ("search_spaces", spaces)):
            for family, names in per_family.items():
                if family not in FAMILIES:
                    raise ValueError(f"{kind}: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
                if unknown_params(family, names):
                    raise ValueError(f"{kind}.{family}: {unknown_params(family, names)} are not parameters of "
                                     f"{type(make_estimator(family, {}, 0)).__name__}")
        return self

    def search_settings(self) -> Dict[str, Any]:
        """How the candidates were searched, as recorded with the model (metadata, MLflow parameters)."""
        return {"cv_folds": self.cv_folds, "seed": self.seed, "families": self.families,
                "search_method": self.tuning.method if self.tuning else "none",
                "n_trials": self.tuning.n_trials if self.tuning else 0, "soft_voting": self.soft_voting,
                "calibration_methods": self.calibration.methods if self.calibration else []}


class Candidate(BaseModel):
    """One configuration that competed in selection."""

    name: str  # a family, or "soft_voting"
    params: Dict[str, Any]  # for soft voting: {member family: its params}
    cv: CVResult
    tuning: Optional[TuningResult] = None
    cv_seconds: float = 0.0  # time in cross-validation: every trial of a tuned family's search
    fit_seconds: float = 0.0  # final fit of the classifier on the whole training split (soft voting: its members')
    train_score: float = float("nan")  # on the training split it was fitted on (for the fitting check)

    def estimator(self, seed: int) -> ClassifierMixin:
        """The unfitted classifier of this configuration."""
        if self.name == SOFT_VOTING:
            return make_soft_voting(self.params, seed)
        return make_estimator(self.name, self.params, seed)


@dataclass
class ModelSelection:
    selected: str
    candidates: Dict[str, Candidate]
    models: Dict[str, Pipeline]  # every candidate, fitted on the whole training split
    scoring: str
    cv_folds: int
    calibration: CalibrationResult  # of the selected candidate
    model: Pipeline  # the selected candidate as registered: calibrated when calibration was kept

    def comparison(self) -> pd.DataFrame:
        """One row per candidate, best CV mean first."""
        rows = []
        for c in self.candidates.values():
            rows.append({
                "family": c.name,
                "selected": c.name == self.selected,
                "cv_mean": c.cv.mean,
                "cv_std": c.cv.std,
                "train_score": c.train_score,
                "tuning_trials": len(c.tuning.trials) if c.tuning else 0,
                "pruned_trials": len(c.tuning.trials) - len(c.tuning.completed) if c.tuning else 0,
                "cv_seconds": c.cv_seconds,
                "fit_seconds": c.fit_seconds,
                "params": json.dumps(c.params, sort_keys=True, default=str),
                "scoring": self.scoring,
            })
        return pd.DataFrame(rows).sort_values("cv_mean", ascending=False, kind="stable").reset_index(drop=True)

    def cv_predictions(self, y: pd.Series) -> pd.DataFrame:
        """Out-of-fold probabilities of every candidate beside the true label, one row per training row."""
        first = next(iter(self.candidates.values())).cv
        frame = pd.DataFrame({"y_true": y.to_numpy(), "fold": first.folds})
        for name, candidate in self.candidates.items():
            frame[name] = candidate.cv.oof_proba
        frame[SELECTED_OOF] = self.calibration.oof_proba  # cross-fitted when calibrated
        return frame


def kept_folds_limit() -> int:
    """Bytes of transformed folds kept for the whole search: half the temporary folder's free space. The folds live
    in memory-mapped files there (`MappedFiles`), so the limit is disk, not memory; above it every trial refits the
    transforms in its folds. At 7.8M training rows (~4 GB of folds) `select_model` took 846 s kept against 928 s
    refitting (its logistic regression trials 36 s against 134 s); at 797k rows (403 MB) 76 s."""
    return shutil.disk_usage(tempfile.gettempdir()).free // 2


@dataclass
class TuningProblem:
    """What every trial of every family is scored on: the training rows, the unfitted feature transforms and the
    options, with one set of stratified folds. A tune-worker rebuilds the same problem from the run's artifacts,
    so a trial scores the same in any process."""

    X: pd.DataFrame
    y: pd.Series
    feature_pipeline: Pipeline
    options: ModelingOptions

    def __post_init__(self) -> None:
        self.splits = stratified_folds(self.y, self.options.cv_folds, self.options.seed)
        self._folds: Optional[TransformedFolds] = None
        self._keep_folds = True
        self._categorized: Optional[pd.DataFrame] = None

    def transformed_folds(self) -> Optional[TransformedFolds]:
        """The folds with their transforms fitted once (made at the first call), or None above `kept_folds_limit()`."""
        if self._folds is None and self._keep_folds:
            self._folds = TransformedFolds.fit(self.feature_pipeline, self.X, self.y, self.splits,
                                               kept_folds_limit())
            self._keep_folds = self._folds is not None
        return self._folds

    def cross_validate(self, classifier: ClassifierMixin, on_fold: Optional[FoldCallback] = None) -> CVResult:
        """`classifier` after the feature transforms, on the problem's folds."""
        folds = self.transformed_folds()
        if folds is not None:
            return folds.cross_validate(classifier, self.options.scoring, self.options.n_jobs, on_fold)
        return cross_validate(assemble_model(self.feature_pipeline, classifier), self._categorized_X(), self.y,
                              self.splits, self.options.scoring, self.options.n_jobs, on_fold)

    def _categorized_X(self) -> pd.DataFrame:
        """X with its text columns as pandas categoricals, for the CV workers that refit the transforms: one byte
        per value instead of a Python string each worker rebuilds (8M rows: ~2 GB per worker). The transforms see
        the same values (imputers and the encoder read a categorical as its values), so the same scores."""
        if self._categorized is None:
            text = [column for column in self.X.columns if self.X[column].dtype == object]
            self._categorized = self.X.astype(dict.fromkeys(text, "category"))
        return self._categorized

    def evaluate(self, family: str, params: Dict[str, Any], on_fold: Optional[FoldCallback] = None) -> CVResult:
        """Cross-validate `family` with the searched `params` (and the config's fixed ones)."""
        return self.cross_validate(make_estimator(family, {**params, **self.options.params.get(family, {})},
                                                  self.options.seed), on_fold)

    def space(self, family: str) -> SearchSpace:
        """The family's search space without the parameters the config fixes."""
        fixed = self.options.params.get(family, {})
        return {k: v for k, v in search_space(family, self.options.tuning.search_spaces).items() if k not in fixed}


def _timed_fit(classifier: ClassifierMixin, X: Any, y: pd.Series, threads: int) -> Tuple[ClassifierMixin, float]:
    started = time.perf_counter()
    return fit_with_threads(classifier, X, y, threads), time.perf_counter() - started


def _fit_candidates(candidates: Dict[str, Candidate], X: pd.DataFrame, y: pd.Series, feature_pipeline: Pipeline,
                    options: ModelingOptions) -> Dict[str, Pipeline]:
    """Every candidate fitted on the whole training split, as `assemble_model(...).fit(X, y)` fits it, with its fit
    seconds and training score set: the feature transforms once for all of them, the families' classifiers
    `options.n_jobs` at a time (threads: their fits release the GIL and share the transformed rows; XGBoost with
    `options.n_jobs` threads of its own, which keeps both cores busy once the others are done: 797k rows, 16.2 s to
    10.3 s), the soft vote from its members' fits."""
    features = clone(feature_pipeline)
    X_fit = features.fit_transform(X, y)  # what Pipeline.fit gives its classifier
    families = [name for name in candidates if name != SOFT_VOTING]
    with Parallel(n_jobs=options.n_jobs, prefer="threads") as parallel:
        classifiers = dict(zip(families, parallel(delayed(_timed_fit)(candidates[name].estimator(options.seed),
                                                                      X_fit, y, options.n_jobs)
                                                       for name in families)))
        for name, (_, seconds) in classifiers.items():
            candidates[name].fit_seconds = seconds
        fitted = {name: classifier for name, (classifier, _) in classifiers.items()}
        if SOFT_VOTING in candidates:
            members = {family: fitted[family] for family in candidates[SOFT_VOTING].params}
            fitted[SOFT_VOTING] = soft_voting_of(members, X_fit, y)
            candidates[SOFT_VOTING].fit_seconds = sum(candidates[family].fit_seconds for family in members)
        del X_fit
        X_scored = features.transform(X)  # what the fitted pipeline gives its classifier
        scorer = get_scorer(options.scoring)
        scores = parallel(delayed(scorer)(classifier, X_scored, y) for classifier in fitted.values())
    for name, score in zip(fitted, scores):
        candidates[name].train_score = float(score)
    return {name: Pipeline([("features", features), ("classifier", classifier)]) for name, classifier in fitted.items()}


def select_model(
    X: pd.DataFrame,
    y: pd.Series,
    feature_pipeline: Pipeline,
    options: ModelingOptions,
    on_family_done: Callable[[Candidate], None] = lambda candidate: None,
    warm_start: Optional[Dict[str, List[Dict[str, Any]]]] = None,
    shared: Optional[SharedStudy] = None,
) -> ModelSelection:
    """Tune, compare and fit every candidate; the selected one has the best CV mean (first listed wins ties).

    `warm_start`: per family, parameter sets tried first (the production version's), when the tuning options
    allow it. `shared`: tune on studies in an RDB storage that tune-workers pull trials from too."""
    problem = TuningProblem(X, y, feature_pipeline, options)
    candidates: Dict[str, Candidate] = {}
    for family in options.families:
        fixed = options.params.get(family, {})
        started = time.perf_counter()
        if options.tuning:
            first = (warm_start or {}).get(family, []) if options.tuning.warm_start else []
            result = tune(family, problem.space(family), partial(problem.evaluate, family), options.tuning,
                          options.seed, first_trials=first, shared=shared)
            candidate = Candidate(name=family, params={**DEFAULT_PARAMS[family], **result.best_params, **fixed},
                                  cv=result.cv, tuning=result)
        else:
            candidate = Candidate(name=family, params={**DEFAULT_PARAMS[family], **fixed},
                                  cv=problem.evaluate(family, {}))
        candidate.cv_seconds = time.perf_counter() - started
        candidates[family] = candidate
        on_family_done(candidate)

    if options.soft_voting and len(options.families) > 1:
        members = {family: candidates[family].params for family in options.families}
        started = time.perf_counter()
        cv = soft_voting_cv([candidates[family].cv for family in options.families], y, options.scoring)
        candidates[SOFT_VOTING] = Candidate(name=SOFT_VOTING, params=members, cv=cv,
                                            cv_seconds=time.perf_counter() - started)

    del problem  # its kept folds: freed before the final fits
    if options.n_jobs > 1:
        stop_cv_workers()
    models = _fit_candidates(candidates, X, y, feature_pipeline, options)
    selected = max(candidates, key=lambda name: candidates[name].cv.mean)
    best = candidates[selected].cv
    calibration = choose_calibration(y, best.oof_proba, best.folds,
                                     options.calibration or CalibrationOptions(methods=[]))
    fitted = models[selected]
    model = Pipeline([("features", fitted.named_steps["features"]),
                      ("classifier", calibrated(fitted.named_steps["classifier"], y, best.oof_proba,
                                                calibration.method))])
    return ModelSelection(selected=selected, candidates=candidates, models=models, scoring=options.scoring,
                          cv_folds=options.cv_folds, calibration=calibration, model=model)
