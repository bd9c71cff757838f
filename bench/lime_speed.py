"""LIME throughput: a plain `explain_instance` loop against heartml.core.explain (worker processes + batched
model calls).

    python bench/lime_speed.py                   # XGBoost with its default parameters, every test patient
    python bench/lime_speed.py --family soft_voting --rounds 6

Both do the same work: the same patients with the same settings (LIME defaults: 5000 samples, 10 features, quartile
discretizer) through the same model pipeline and raw-feature encoding, each patient's neighbourhood from the same
seed (`patient_seed`), so the explanations are equal, which is checked; the pipeline's stability reruns
(`explain.stability_patients`, explanations the plain loop does not make) are off. Every round runs both, which one
first alternating (bench/measure.py), so a change in machine load hits both; the median round of each is reported.
Every "ours" round includes starting the workers and building their explainers.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional

from common import training_setup, write_json
from lime.lime_tabular import LimeTabularExplainer
from measure import compare, load_average

from heartml.core.explain import ExplainOptions, RawEncoding, explain_patients, model_predict_proba, patient_seed
from heartml.core.modeling import DEFAULT_PARAMS, SOFT_VOTING, assemble_model, make_estimator, make_soft_voting
from heartml.core.preprocessing import features_and_target

TARGET_SPEEDUP = 4.0  # speed round two (round one: 2.0)


def measure(family: str = "xgboost", rounds: int = 4, n_jobs: int = 2, batch_size: int = 16,
            num_samples: int = 5000, patients: Optional[int] = None) -> Dict[str, Any]:
    """Patients per second of both ways over `rounds` alternating rounds; `patients`: the first N test patients."""
    setup = training_setup()
    spec = setup.dataset
    X_train, y_train = features_and_target(setup.train, spec)
    X_test, _ = features_and_target(setup.test, spec)
    if patients is not None:
        X_test = X_test.head(patients)
    estimator = (make_soft_voting({f: {} for f in DEFAULT_PARAMS}, seed=42) if family == SOFT_VOTING
                 else make_estimator(family, {}, seed=42))
    model = assemble_model(setup.features, estimator).fit(X_train, y_train)
    options = ExplainOptions(num_samples=num_samples, n_jobs=n_jobs, batch_size=batch_size, max_patients=None,
                             stability_patients=0)

    encoding = RawEncoding.fit(X_train, spec, X_test)
    plain_explainer = LimeTabularExplainer(
        encoding.encode(X_train), mode="classification", feature_names=encoding.feature_names,
        categorical_features=encoding.categorical_indices, categorical_names=encoding.categorical_names,
        discretize_continuous=True, random_state=options.seed,
    )
    predict = model_predict_proba(model, encoding)
    rows = encoding.encode(X_test)

    weights = {}  # the last round's explanations of each way: (feature, weight) per patient

    def plain() -> None:
        explanations = []
        for position, row in enumerate(rows):
            plain_explainer.random_state.seed(patient_seed(options.seed, position))
            explanations.append(plain_explainer.explain_instance(
                row, predict, labels=(1,), num_features=options.num_features, num_samples=options.num_samples))
        weights["plain"] = [[(encoding.feature_names[i], w) for i, w in exp.as_map()[1]] for exp in explanations]

    def ours() -> None:
        explained = explain_patients(model, X_train, X_test, spec, options)
        weights["ours"] = [[(c.feature, c.weight) for c in p.contributions] for p in explained.patients]

    print(f"{family}: {len(X_test)} test patients, {options.num_samples} samples, {os.cpu_count()} cores, "
          f"load average {load_average()} before")
    timed = compare(rounds, len(rows), plain, ours, names=("plain", "ours"))
    figure = {
        "family": family, "patients": len(rows), "num_samples": num_samples, "n_jobs": n_jobs,
        "batch_size": batch_size, "rounds": rounds,
        "plain_patients_per_second": round(timed.reference_per_second, 2),
        "ours_patients_per_second": round(timed.ours_per_second, 2),
        "speedup": round(timed.ratio, 3), "target_speedup": TARGET_SPEEDUP,
        "results_equal": weights["plain"] == weights["ours"],
        "load_before": timed.load_before, "load_after": timed.load_after,
    }
    print(f"median: plain loop {figure['plain_patients_per_second']:.1f} patients/s, heartml.core.explain "
          f"{figure['ours_patients_per_second']:.1f} patients/s ({n_jobs} workers, batches of {batch_size}): "
          f"{figure['speedup']:.2f}x; explanations {'equal' if figure['results_equal'] else 'NOT EQUAL'}; load "
          f"average {figure['load_after']:.2f} after")
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="xgboost", choices=[*DEFAULT_PARAMS, SOFT_VOTING])
    parser.add_argument("--rounds", type=int, default=4, help="an even number: each goes first as often")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--patients", type=int, help="only the first N test patients (default: all)")
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    write_json(args.json, measure(args.family, args.rounds, args.n_jobs, args.batch_size, args.num_samples,
                                  args.patients))


if __name__ == "__main__":
    main()
