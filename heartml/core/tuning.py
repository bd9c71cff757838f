"""Hyperparameter search with Optuna: TPE (default), random or grid sampling over one declarative search space.

All three methods share the objective (stratified k-fold CV on the training split, every transform refitted in
each fold) and the trial records, so switching `method` in the config changes only the sampler.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any, Callable, Dict, List, Literal, Optional

import numpy as np
import optuna
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from heartml.core.modeling import CVResult
from heartml.core.progress import progress_bar

logger = logging.getLogger(__name__)

SearchMethod = Literal["optuna", "random", "grid"]


class ParamSpec(BaseModel):
    """The domain of one hyperparameter."""

    type: Literal["int", "float", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[List[Any]] = None
    grid: Optional[List[Any]] = None  # values tried by grid search; default: choices, or evenly spaced points

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices`")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs `low` <= `high`")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self, points: int) -> List[Any]:
        if self.grid is not None:
            return list(self.grid)
        if self.type == "categorical":
            return list(self.choices)
        spaced = np.geomspace(self.low, self.high, points) if self.log else np.linspace(self.low, self.high, points)
        if self.type == "int":
            return sorted({int(round(v)) for v in spaced})
        return [float(v) for v in spaced]


SearchSpace = Dict[str, ParamSpec]

# Ranges that suit a few hundred to a few thousand tabular rows; configs can replace a family's space.
DEFAULT_SEARCH_SPACES: Dict[str, Dict[str, Dict[str, Any]]] = {
    "xgboost": {
        "n_estimators": {"type": "int", "low": 100, "high": 600, "step": 50},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "max_depth": {"type": "int", "low": 2, "high": 6},
        "min_child_weight": {"type": "float", "low": 0.5, "high": 10, "log": True},
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},
        "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},
        "reg_lambda": {"type": "float", "low": 0.1, "high": 20, "log": True},
    },
    "random_forest": {
        "max_features": {"type": "float", "low": 0.1, "high": 0.8},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 10},
        "max_depth": {"type": "categorical", "choices": [None, 4, 6, 8, 12]},
    },
    "logistic_regression": {
        "C": {"type": "float", "low": 0.001, "high": 10, "log": True},
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},
    },
}


def search_space(family: str, overrides: Dict[str, SearchSpace]) -> SearchSpace:
    if family in overrides:
        return overrides[family]
    return {name: ParamSpec.model_validate(spec) for name, spec in DEFAULT_SEARCH_SPACES[family].items()}


class TuningOptions(BaseModel):
    method: SearchMethod = "optuna"
    n_trials: int = Field(30, ge=1)  # per family; grid search stops earlier once its grid is exhausted
    # Safety cap per family. When it cuts a search short, the result depends on machine speed (logged).
    timeout_seconds: Optional[float] = 300
    grid_points: int = Field(3, ge=2)  # numeric parameters without an explicit `grid`
    # Per family; replaces that family's default space as a whole. Absent family: its default space.
    search_spaces: Dict[str, SearchSpace] = Field(default_factory=dict)
    progress_bar: bool = True  # on a terminal only (heartml/core/progress.py)


class TrialRecord(BaseModel):
    number: int
    params: Dict[str, Any]
    cv_mean: float
    cv_std: float
    seconds: float


class TuningResult(BaseModel):
    family: str
    method: SearchMethod
    best_params: Dict[str, Any]
    best_trial: int
    cv: CVResult
    trials: List[TrialRecord]
    stopped_by_timeout: bool

    def trials_frame(self) -> pd.DataFrame:
        rows = [{"trial": t.number, "cv_mean": t.cv_mean, "cv_std": t.cv_std, "seconds": t.seconds,
                 **{f"param.{k}": v for k, v in t.params.items()}} for t in self.trials]
        return pd.DataFrame(rows)


def make_sampler(method: SearchMethod, space: SearchSpace, seed: int, grid_points: int) -> optuna.samplers.BaseSampler:
    if method == "optuna":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler({name: spec.grid_values(grid_points) for name, spec in space.items()},
                                       seed=seed)


def grid_size(space: SearchSpace, grid_points: int) -> int:
    return math.prod(len(spec.grid_values(grid_points)) for spec in space.values())


def tune(
    family: str,
    space: SearchSpace,
    evaluate: Callable[[Dict[str, Any]], CVResult],
    options: TuningOptions,
    seed: int,
) -> TuningResult:
    """Search `space` maximizing the CV mean that `evaluate(params)` returns; seeded, so repeatable.

    `evaluate` gets the sampled parameters and cross-validates the family with them.
    """
    sampler = make_sampler(options.method, space, seed, options.grid_points)
    results: Dict[int, CVResult] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {name: spec.suggest(trial, name) for name, spec in space.items()}
        started = time.perf_counter()
        result = evaluate(params)
        results[trial.number] = result
        trial.set_user_attr("cv_std", result.std)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        return result.mean

    n_trials = options.n_trials
    if options.method == "grid":
        n_trials = min(n_trials, grid_size(space, options.grid_points))
    started = time.perf_counter()
    with _quiet_optuna(), warnings.catch_warnings(), \
            progress_bar(n_trials, f"tune {family}", unit="trial", enabled=options.progress_bar) as bar:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"{family}-{options.method}")

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state == optuna.trial.TrialState.COMPLETE:
                bar.set_postfix_str(f"best CV {study.best_value:.4f}", refresh=False)
            bar.update(1)

        study.optimize(objective, n_trials=n_trials, timeout=options.timeout_seconds, callbacks=[advance])
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    logger.info("tune %s: %d trials (%s) in %.1f s, best CV mean %.4f (trial %d)", family, len(completed),
                options.method, time.perf_counter() - started, study.best_value, study.best_trial.number)
    stopped_by_timeout = len(completed) < n_trials
    if stopped_by_timeout:
        logger.warning("%s: tuning stopped by the %.0f s timeout after %d of %d trials; "
                       "the result now depends on machine speed", family, options.timeout_seconds,
                       len(completed), n_trials)
    best = study.best_trial
    return TuningResult(
        family=family,
        method=options.method,
        best_params=best.params,
        best_trial=best.number,
        cv=results[best.number],
        trials=[TrialRecord(number=t.number, params=t.params, cv_mean=t.value, cv_std=t.user_attrs["cv_std"],
                            seconds=t.user_attrs["seconds"]) for t in completed],
        stopped_by_timeout=stopped_by_timeout,
    )


class _quiet_optuna:
    """Optuna logs one INFO line per trial; the progress bar and the trial records say the same."""

    def __enter__(self) -> None:
        self.previous = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        optuna.logging.set_verbosity(self.previous)
