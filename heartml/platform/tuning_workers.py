"""Tuning that scales out: the model_building step's studies on a shared Optuna RDB storage, and the
`python run.py tune-worker` processes (here, or nodes of an Azure ML cluster) that pull trials from them.

A study is named `heartml-<pipeline run id>-<family>` and carries, as study user attributes, what a worker needs
to score a trial exactly as the step does: the ZenML artifact ids of the step's `train_set` and
`feature_pipeline` inputs, the dataset description and the modeling options (seed, folds, search space). A worker
loads those two artifacts from the ZenML store its client is connected to, so it needs the same ZenML server (or,
on one machine, the same local store) and artifact store as the run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

import optuna
from zenml import get_step_context
from zenml.client import Client

from heartml.core.dataset import DatasetSpec
from heartml.core.preprocessing import features_and_target
from heartml.core.selection import ModelingOptions, TuningProblem
from heartml.core.tuning import SharedStudy, check_storage_url, join_study, rdb_storage, worker_name

logger = logging.getLogger(__name__)

STUDY_PREFIX = "heartml-"
# Study attributes a worker reads (besides the ones tune() sets: family, n_trials, closed).
_RUN, _FAMILIES, _TRAIN_SET, _FEATURES, _DATASET, _MODELING = (
    "zenml_run", "families", "train_set_artifact", "feature_pipeline_artifact", "dataset", "modeling")


def shared_study_of_step(modeling: ModelingOptions, dataset: DatasetSpec) -> Optional[SharedStudy]:
    """Inside the model_building step: where its studies go when `tuning.storage` is set (else None)."""
    url = modeling.tuning.storage_url() if modeling.tuning else None
    if url is None:
        return None
    context = get_step_context()
    run_id = str(context.pipeline_run.id)
    inputs = context.inputs
    return SharedStudy(url=url, prefix=f"{STUDY_PREFIX}{run_id}-", attrs={
        _FAMILIES: list(modeling.families),
        _TRAIN_SET: str(inputs["train_set"][0].id), _FEATURES: str(inputs["feature_pipeline"][0].id),
        _DATASET: dataset.model_dump(mode="json"), _MODELING: modeling.model_dump(mode="json"),
        _RUN: run_id,  # last: a worker takes the study once this is set
    })


@dataclass
class WorkerReport:
    """What one worker did: per study, the numbers of the trials it ran."""

    worker: str
    trials: Dict[str, List[int]] = field(default_factory=dict)
    runs: List[str] = field(default_factory=list)


def open_studies(storage: optuna.storages.BaseStorage) -> List[Tuple[str, Dict[str, Any]]]:
    """(name, user attributes) of every heartml study in `storage` that still takes trials, oldest first."""
    found = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if summary.study_name.startswith(STUDY_PREFIX) and _RUN in attrs and not attrs.get("closed"):
            found.append((summary.study_name, attrs))
    return found


def run_has_ended(run_id: str) -> bool:
    """Whether the ZenML run of a study is over (failed, stopped, completed) or gone."""
    try:
        return Client().get_pipeline_run(run_id, allow_name_prefix_match=False, hydrate=False).status.is_finished
    except KeyError:
        return True


class _Problems:
    """Each run's tuning problem, rebuilt once from its artifacts."""

    def __init__(self) -> None:
        self._by_run: Dict[str, TuningProblem] = {}

    def of(self, attrs: Dict[str, Any]) -> TuningProblem:
        run = attrs[_RUN]
        if run not in self._by_run:
            client = Client()
            train_set = client.get_artifact_version(attrs[_TRAIN_SET]).load()
            feature_pipeline = client.get_artifact_version(attrs[_FEATURES]).load()
            dataset = DatasetSpec.model_validate(attrs[_DATASET])
            X, y = features_and_target(train_set, dataset)
            options = ModelingOptions.model_validate(attrs[_MODELING])
            options = options.model_copy(update={"tuning": options.tuning.model_copy(update={"progress_bar": False})})
            self._by_run[run] = TuningProblem(X, y, feature_pipeline, options)
        return self._by_run[run]


def run_worker(storage_url: str, max_runs: Optional[int] = None, idle_seconds: float = 600,
               poll_seconds: float = 1.0) -> WorkerReport:
    """Pull trials from every open heartml study in `storage_url` until `max_runs` pipeline runs have been worked
    on to their last family, or no study has been open for `idle_seconds`."""
    check_storage_url(storage_url, "tune-worker --storage", password_allowed=True)
    storage = rdb_storage(storage_url)
    report = WorkerReport(worker=worker_name())
    problems = _Problems()
    finished_runs: List[str] = []
    idle_since = time.monotonic()
    while max_runs is None or len(finished_runs) < max_runs:
        studies = [(name, attrs) for name, attrs in open_studies(storage) if name not in report.trials]
        if not studies:
            if time.monotonic() - idle_since > idle_seconds:
                break
            time.sleep(poll_seconds)
            continue
        name, attrs = studies[0]
        if run_has_ended(attrs[_RUN]):  # killed before it closed its studies, and since marked so in ZenML
            optuna.load_study(study_name=name, storage=storage).set_user_attr("closed", True)
            logger.info("%s: its run %s has ended; closed, no trials taken", name, attrs[_RUN])
            continue
        problem = problems.of(attrs)
        family = attrs["family"]
        ran = join_study(name, storage, problem.space(family), partial(problem.evaluate, family),
                         problem.options.tuning, sampler_seed=problem.options.seed + os.getpid())
        report.trials[name] = ran
        logger.info("%s: %d trials here (%s)", name, len(ran), ", ".join(map(str, ran)) or "none left")
        if attrs[_RUN] not in report.runs:
            report.runs.append(attrs[_RUN])
        if family == attrs[_FAMILIES][-1]:
            finished_runs.append(attrs[_RUN])
        idle_since = time.monotonic()
    return report
