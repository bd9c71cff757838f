"""SHAP throughput of the tree models: heartml.core.shapley.shap_patients (TreeSHAP, summed per raw column, as the
explain_with_shap step runs it: interventional for XGBoost, path-dependent for the random forest, in worker
processes) for XGBoost and the random forest, each with its default parameters, trained on the training split of
configs/training.yaml.

    python bench/shap_speed.py [--patients 2000] [--rounds 3] [--json out.json]

The test split has 184 patients; to measure a steady rate they are repeated up to `--patients` rows. Each round
times one call (explainer construction included); the median round is reported, in patients per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Dict

import pandas as pd
from common import training_setup, write_json
from measure import load_average

from heartml.core.modeling import assemble_model, make_estimator
from heartml.core.preprocessing import features_and_target
from heartml.core.shapley import ShapOptions, shap_patients

TARGET_PATIENTS_PER_SECOND = 1000.0
TREE_FAMILIES = ("xgboost", "random_forest")


def measure(patients: int = 2000, rounds: int = 3) -> Dict[str, Any]:
    setup = training_setup()
    spec = setup.dataset
    X_train, y_train = features_and_target(setup.train, spec)
    X_test, _ = features_and_target(setup.test, spec)
    repeats = -(-patients // len(X_test))
    X_many = pd.concat([X_test] * repeats, ignore_index=True).head(patients)
    options = ShapOptions(method="tree", max_patients=None)
    results: Dict[str, Any] = {}
    for family in TREE_FAMILIES:
        model = assemble_model(setup.features, make_estimator(family, {}, seed=42)).fit(X_train, y_train)
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            explained = shap_patients(model, X_train, X_many, range(len(X_many)), spec, options)
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        results[family] = {"patients": len(explained.patients), "seconds": round(median, 3),
                           "patients_per_second": round(len(X_many) / median, 1), "method": explained.method,
                           "tree_algorithm": explained.tree_algorithm}
        print(f"  {family}: {len(X_many)} patients in {median:.2f} s = {len(X_many) / median:,.0f} patients/s "
              f"({explained.why})", flush=True)
    return {"families": results, "background_rows": options.background_rows, "rounds": rounds,
            "target_patients_per_second": TARGET_PATIENTS_PER_SECOND, "load_before": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    write_json(args.json, measure(args.patients, args.rounds))


if __name__ == "__main__":
    main()
