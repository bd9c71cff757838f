"""One worker on the same trials: the model_building step of a finished run that tuned on a shared study, done
again in this one process (in memory, no storage), each family trying exactly the shared study's trials in trial
order. Prints what it selected and how the run's selected model and this one compare on the run's test set.

    python -m tests.team.replay_tuning RUN_ID     # with the account's environment (ZenML server, storage)
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import optuna
from zenml.client import Client

from heartml.core.dataset import DatasetSpec
from heartml.core.preprocessing import features_and_target
from heartml.core.selection import ModelingOptions, select_model
from heartml.core.tuning import ran_trials, rdb_storage
from heartml.platform.tuning_workers import STUDY_PREFIX


def main(run_id: str) -> None:
    run = Client().get_pipeline_run(run_id)
    step = run.steps["model_building"]
    train_set = step.inputs["train_set"][0].load()
    feature_pipeline = step.inputs["feature_pipeline"][0].load()
    storage = rdb_storage(os.environ["HEARTML_TUNING_STORAGE"])
    attrs = optuna.load_study(study_name=f"{STUDY_PREFIX}{run.id}-logistic_regression", storage=storage).user_attrs
    dataset = DatasetSpec.model_validate(attrs["dataset"])
    options = ModelingOptions.model_validate(attrs["modeling"])
    shared_trials = {}
    for family in options.families:
        study = optuna.load_study(study_name=f"{STUDY_PREFIX}{run.id}-{family}", storage=storage)
        shared_trials[family] = [t.params for t in ran_trials(study)]  # in trial order
    # Exactly those trials: the shared studies ran n_trials each, and every one is queued here in its order.
    options = options.model_copy(update={"tuning": options.tuning.model_copy(
        update={"storage": None, "progress_bar": False})})
    X, y = features_and_target(train_set, dataset)
    selection = select_model(X, y, feature_pipeline, options, warm_start=shared_trials)
    test_set = run.steps["data_preprocessing"].outputs["test_set"][0].load()
    X_test, _ = features_and_target(test_set, dataset)
    run_model = step.outputs["model"][0].load()
    comparison = step.outputs["model_comparison"][0].load().set_index("family")
    print(json.dumps({
        "selected": selection.selected,
        "run_selected": str(comparison.index[comparison["selected"].astype(bool)][0]),
        "params": json.loads(json.dumps(selection.candidates[selection.selected].params, default=str)),
        "run_params": json.loads(comparison.loc[selection.selected, "params"]),
        "cv_mean": {name: c.cv.mean for name, c in selection.candidates.items()},
        "run_cv_mean": {name: float(comparison.loc[name, "cv_mean"]) for name in selection.candidates},
        "trials": {family: len(r.tuning.trials) for family, r in selection.candidates.items() if r.tuning},
        "max_probability_difference": float(np.max(np.abs(
            selection.model.predict_proba(X_test)[:, 1] - run_model.predict_proba(X_test)[:, 1]))),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
