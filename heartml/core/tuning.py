"""Hyperparameter search with Optuna: TPE (default), random or grid sampling over one declarative search space.

All three methods share the objective (stratified k-fold CV on the training split, every transform refitted in
each fold) and the trial records, so switching `method` in the config changes only the sampler.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from heartml.core.modeling import CVResult, FoldCallback
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

    def contains(self, value: Any) -> bool:
        """Whether `value` lies in this domain (a production version's parameter after the space changed)."""
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and value != int(value):
            return False
        return self.low <= value <= self.high

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


class PruningOptions(BaseModel):
    """Optuna's median pruner on the running CV mean: a trial whose mean after a fold is below the median of the
    earlier trials' means after that same fold stops there (every trial sees the same folds in the same order)."""

    startup_trials: int = Field(5, ge=0)  # trials run to the end before any is pruned
    warmup_folds: int = Field(1, ge=0)  # folds every trial runs before it can be pruned


class TuningOptions(BaseModel):
    method: SearchMethod = "optuna"
    n_trials: int = Field(30, ge=1)  # per family; grid search stops earlier once its grid is exhausted
    # Safety cap per family. When it cuts a search short, the result depends on machine speed (logged).
    timeout_seconds: Optional[float] = 300
    grid_points: int = Field(3, ge=2)  # numeric parameters without an explicit `grid`
    # Per family; replaces that family's default space as a whole. Absent family: its default space.
    search_spaces: Dict[str, SearchSpace] = Field(default_factory=dict)
    pruning: Optional[PruningOptions] = Field(default_factory=PruningOptions)  # null: every trial runs every fold
    warm_start: bool = True  # each family's first trial: its parameters in the current `production` version
    # An Optuna RDB storage shared with `python run.py tune-worker` processes: an SQLAlchemy URL without a password
    # (PostgreSQL reads PGPASSWORD), or `$VARIABLE` to take the whole URL from the environment. null: in memory.
    storage: Optional[str] = None
    progress_bar: bool = True  # on a terminal only (heartml/core/progress.py)

    @field_validator("storage")
    @classmethod
    def _shareable_storage(cls, storage: Optional[str]) -> Optional[str]:
        if storage is not None and not storage.startswith("$"):
            check_storage_url(storage, "tuning.storage")
        return storage

    def storage_url(self) -> Optional[str]:
        """The storage URL, read from the environment when the config names a variable."""
        if self.storage is None or not self.storage.startswith("$"):
            return self.storage
        name = self.storage[1:]
        if not os.environ.get(name):
            raise ValueError(f"tuning.storage: the environment variable {name} is not set")
        return check_storage_url(os.environ[name], f"tuning.storage (${name})", password_allowed=True)


def check_storage_url(url: str, label: str, password_allowed: bool = False) -> str:
    """An RDB URL that several processes can share: not SQLite (its file locks do not hold up to concurrent
    writers), and no password where the URL is written into configs, step parameters and logs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{label}: {url!r} is not an SQLAlchemy database URL "
                         "(e.g. postgresql+psycopg2://user@host:5432/optuna)") from None
    if parsed.get_backend_name() == "sqlite":
        raise ValueError(f"{label}: SQLite is not safe for several tuning workers; use PostgreSQL or MySQL")
    if parsed.password and not password_allowed:
        raise ValueError(f"{label}: the URL holds a password; leave it out (PostgreSQL reads PGPASSWORD) or name an "
                         "environment variable holding the URL: `storage: $HEARTML_TUNING_STORAGE`")
    return url


class TrialRecord(BaseModel):
    number: int
    params: Dict[str, Any]
    cv_mean: float  # pruned: the mean of the folds it ran
    cv_std: float
    seconds: float
    folds: int  # folds run: all of them unless pruned
    state: Literal["complete", "pruned"] = "complete"
    worker: str = ""  # host:pid of the process that ran it


class TuningResult(BaseModel):
    family: str
    method: SearchMethod
    best_params: Dict[str, Any]
    best_trial: int
    cv: CVResult
    trials: List[TrialRecord]  # every trial that ran, complete or pruned, in trial order
    stopped_by_timeout: bool
    study: Optional[str] = None  # the shared study's name, when tuned on a storage

    @property
    def completed(self) -> List[TrialRecord]:
        return [t for t in self.trials if t.state == "complete"]

    def trials_frame(self) -> pd.DataFrame:
        rows = [{"trial": t.number, "state": t.state, "cv_mean": t.cv_mean, "cv_std": t.cv_std, "folds": t.folds,
                 "seconds": t.seconds, **{f"param.{k}": v for k, v in t.params.items()}} for t in self.trials]
        return pd.DataFrame(rows)


def make_sampler(method: SearchMethod, space: SearchSpace, seed: int, grid_points: int,
                 shared: bool = False) -> optuna.samplers.BaseSampler:
    """`shared`: several processes ask one study at once; TPE then counts running trials as bad ones (constant
    liar) so that two workers do not pick the same point."""
    if method == "optuna":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=shared)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler({name: spec.grid_values(grid_points) for name, spec in space.items()},
                                       seed=seed)


def make_pruner(pruning: Optional[PruningOptions]) -> optuna.pruners.BasePruner:
    if pruning is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=pruning.startup_trials, n_warmup_steps=pruning.warmup_folds)


def grid_size(space: SearchSpace, grid_points: int) -> int:
    return math.prod(len(spec.grid_values(grid_points)) for spec in space.values())


def first_trial_params(space: SearchSpace, params: Dict[str, Any]) -> Dict[str, Any]:
    """The parameters of `params` (e.g. the production version's) that the search space can take as they are;
    the others are sampled."""
    return {name: params[name] for name, spec in space.items() if name in params and spec.contains(params[name])}


Evaluate = Callable[[Dict[str, Any], Optional[FoldCallback]], CVResult]
TRIAL_STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}
# Trials that count against a study's budget: the ones run and running (not the failed ones, nor the queued ones,
# which are numbered when queued and run first).
_BUDGET = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
_OVER_BUDGET = "over_budget"


@dataclass
class SharedStudy:
    """Where this run's studies live so that `python run.py tune-worker` processes can pull trials from them:
    one study per family, named `<prefix><family>`, carrying `attrs` (what a worker needs to rebuild the
    objective) as study user attributes, set in order: workers wait for the last one."""

    url: str
    prefix: str
    attrs: Dict[str, Any] = field(default_factory=dict)
    heartbeat_seconds: int = 10  # a worker that stops beating for 3 of these has its trial failed

    def storage(self) -> optuna.storages.RDBStorage:
        return rdb_storage(self.url, self.heartbeat_seconds)

    def name(self, family: str) -> str:
        return f"{self.prefix}{family}"


def rdb_storage(url: str, heartbeat_seconds: int = 10) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; what fails a dead worker's trial
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True},
                                          heartbeat_interval=heartbeat_seconds, grace_period=3 * heartbeat_seconds)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_objective(space: SearchSpace, evaluate: Evaluate, results: Dict[int, CVResult], ran: List[int],
                    n_trials: int) -> Callable[[optuna.Trial], float]:
    """The objective of one study; a trial numbered past `n_trials` (two workers asked for the last one at once:
    the storage numbers trials in creation order) stops at once, marked over budget, so a study runs exactly
    `n_trials` trials with any number of workers."""
    def objective(trial: optuna.Trial) -> float:
        if trial.number >= n_trials:
            trial.set_user_attr(_OVER_BUDGET, True)
            raise optuna.TrialPruned()
        params = {name: spec.suggest(trial, name) for name, spec in space.items()}
        started = time.perf_counter()
        trial.set_user_attr("worker", worker_name())
        ran.append(trial.number)

        def record(scores: List[float]) -> None:  # what a trial record holds, pruned or complete
            trial.set_user_attr("cv_std", float(np.std(scores)))
            trial.set_user_attr("folds", len(scores))
            trial.set_user_attr("seconds", time.perf_counter() - started)

        def report(fold: int, scores: List[float]) -> None:
            trial.report(float(np.mean(scores)), fold)
            if trial.should_prune():
                record(scores)
                raise optuna.TrialPruned()

        result = evaluate(params, report)
        results[trial.number] = result
        record(result.scores)
        return result.mean

    return objective


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
               timeout: Optional[float] = None, callbacks: Sequence[Callable] = ()) -> None:
    """Trials of `study` one at a time (queued ones first) until `n_trials` have run or are running, in any
    process, or `timeout` seconds have passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while len(study.get_trials(deepcopy=False, states=_BUDGET)) < n_trials:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        study.optimize(objective, n_trials=1, timeout=left, callbacks=list(callbacks))


def wait_for_other_workers(study: optuna.Study, timeout: Optional[float]) -> None:
    """Until no trial of `study` is running in another process (a dead worker's trial fails after its grace
    period, through the storage's heartbeat)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if deadline is not None and time.monotonic() > deadline:
            logger.warning("study %s: trials still running in other workers after the timeout; not waiting for them",
                           study.study_name)
            return
        optuna.storages.fail_stale_trials(study)
        time.sleep(0.5)


def ran_trials(study: optuna.Study) -> List[optuna.trial.FrozenTrial]:
    """The trials that ran, complete or pruned (not the ones stopped as over budget), in trial order."""
    return [t for t in study.get_trials(deepcopy=False, states=tuple(TRIAL_STATES))
            if not t.user_attrs.get(_OVER_BUDGET)]


def trial_records(study: optuna.Study) -> List[TrialRecord]:
    return [TrialRecord(number=t.number, params=t.params,
                        cv_mean=t.value if t.state == TrialState.COMPLETE else
                        t.intermediate_values[max(t.intermediate_values)],
                        cv_std=t.user_attrs["cv_std"], seconds=t.user_attrs["seconds"], folds=t.user_attrs["folds"],
                        state=TRIAL_STATES[t.state], worker=t.user_attrs.get("worker", ""))
            for t in ran_trials(study)]


def tune(
    family: str,
    space: SearchSpace,
    evaluate: Evaluate,
    options: TuningOptions,
    seed: int,
    first_trials: Sequence[Dict[str, Any]] = (),
    shared: Optional[SharedStudy] = None,
) -> TuningResult:
    """Search `space` maximizing the CV mean that `evaluate(params, on_fold)` returns; seeded, so repeatable
    (in memory; on a shared study the trials depend on which worker asks first).

    `evaluate` cross-validates the family with the sampled parameters and calls `on_fold(fold, scores)` after each
    fold, which raises optuna.TrialPruned to stop a trial. `first_trials`: parameter sets tried first, in order
    (the production version's; a parameter outside `space` is sampled). `shared`: the study lives in an RDB
    storage where tune-workers take trials from it too; this process waits for their last trials before choosing
    the best."""
    n_trials = options.n_trials
    if options.method == "grid":
        n_trials = min(n_trials, grid_size(space, options.grid_points))
    sampler = make_sampler(options.method, space, seed, options.grid_points, shared=shared is not None)
    results: Dict[int, CVResult] = {}
    ran: List[int] = []
    started = time.perf_counter()
    with _quiet_optuna(), warnings.catch_warnings(), \
            progress_bar(n_trials, f"tune {family}", unit="trial", enabled=options.progress_bar) as bar:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            direction="maximize", sampler=sampler, pruner=make_pruner(options.pruning),
            study_name=shared.name(family) if shared else f"{family}-{options.method}",
            storage=shared.storage() if shared else None, load_if_exists=shared is not None)
        for params in first_trials:
            study.enqueue_trial(first_trial_params(space, params), skip_if_exists=True)
        if shared:  # workers take a study once its last attribute is there: the queued trials come first
            for key, value in {"family": family, "n_trials": n_trials, "closed": False, **shared.attrs}.items():
                study.set_user_attr(key, value)

        def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state == TrialState.COMPLETE:
                bar.set_postfix_str(f"best CV {study.best_value:.4f}", refresh=False)
            bar.update(1)

        objective = trial_objective(space, evaluate, results, ran, n_trials)
        run_trials(study, objective, n_trials, options.timeout_seconds, [advance])
        if shared:
            wait_for_other_workers(study, options.timeout_seconds)
            study.set_user_attr("closed", True)  # late workers skip it
    records = trial_records(study)
    completed = [t for t in records if t.state == "complete"]
    best = study.best_trial
    logger.info("tune %s: %d trials (%s; %d pruned, %d by other workers) in %.1f s, best CV mean %.4f (trial %d)",
                family, len(records), options.method, len(records) - len(completed),
                len([t for t in records if t.number not in ran]), time.perf_counter() - started, best.value,
                best.number)
    stopped_by_timeout = len(records) < n_trials
    if stopped_by_timeout:
        logger.warning("%s: tuning stopped by the %.0f s timeout after %d of %d trials; "
                       "the result now depends on machine speed", family, options.timeout_seconds,
                       len(records), n_trials)
    # A trial another worker ran is cross-validated again here: same folds and seeds, so the same scores.
    cv = results.get(best.number) or evaluate(best.params, None)
    return TuningResult(family=family, method=options.method, best_params=best.params, best_trial=best.number,
                        cv=cv, trials=records, stopped_by_timeout=stopped_by_timeout,
                        study=shared.name(family) if shared else None)


def join_study(study_name: str, storage: optuna.storages.BaseStorage, space: SearchSpace, evaluate: Evaluate,
               options: TuningOptions, sampler_seed: int) -> List[int]:
    """A tune-worker's part of one shared study: trials until the study's budget (set by the run that created it)
    is taken. Returns the numbers of the trials run here."""
    ran: List[int] = []
    with _quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.load_study(
            study_name=study_name, storage=storage, pruner=make_pruner(options.pruning),
            sampler=make_sampler(options.method, space, sampler_seed, options.grid_points, shared=True))
        n_trials = int(study.user_attrs["n_trials"])
        run_trials(study, trial_objective(space, evaluate, {}, ran, n_trials), n_trials, options.timeout_seconds)
    return ran


class _quiet_optuna:
    """Optuna logs one INFO line per trial; the progress bar and the trial records say the same."""

    def __enter__(self) -> None:
        self.previous = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        optuna.logging.set_verbosity(self.previous)
