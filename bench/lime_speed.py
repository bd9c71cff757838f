"""LIME throughput: a plain `explain_instance` loop against heartml.explain (worker processes + batched model calls).

    python bench/lime_speed.py                   # XGBoost with its default parameters, every test patient
    python bench/lime_speed.py --family soft_voting --rounds 5

Both explain the same patients with the same settings (LIME defaults: 5000 samples, 10 features, quartile
discretizer) through the same model pipeline and raw-feature encoding. Rounds alternate plain/ours, so a change in
machine load hits both; the median round is reported. The first "ours" round includes starting the workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from lime.lime_tabular import LimeTabularExplainer

from common import training_setup
from heartml.explain import ExplainOptions, RawEncoding, explain_patients, model_predict_proba
from heartml.modeling import DEFAULT_PARAMS, SOFT_VOTING, assemble_model, make_estimator, make_soft_voting
from heartml.preprocessing import features_and_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="xgboost", choices=[*DEFAULT_PARAMS, SOFT_VOTING])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-samples", type=int, default=5000)
    args = parser.parse_args()

    setup = training_setup()
    spec = setup.dataset
    X_train, y_train = features_and_target(setup.train, spec)
    X_test, _ = features_and_target(setup.test, spec)
    estimator = (make_soft_voting({f: {} for f in DEFAULT_PARAMS}, seed=42) if args.family == SOFT_VOTING
                 else make_estimator(args.family, {}, seed=42))
    model = assemble_model(setup.features, estimator).fit(X_train, y_train)
    options = ExplainOptions(num_samples=args.num_samples, n_jobs=args.n_jobs, batch_size=args.batch_size)

    encoding = RawEncoding.fit(X_train, spec, X_test)
    plain_explainer = LimeTabularExplainer(
        encoding.encode(X_train), mode="classification", feature_names=encoding.feature_names,
        categorical_features=encoding.categorical_indices, categorical_names=encoding.categorical_names,
        discretize_continuous=True, random_state=options.seed,
    )
    predict = model_predict_proba(model, encoding)
    rows = encoding.encode(X_test)

    def plain() -> float:
        started = time.perf_counter()
        for row in rows:
            plain_explainer.explain_instance(row, predict, labels=(1,), num_features=options.num_features,
                                             num_samples=options.num_samples)
        return time.perf_counter() - started

    def ours() -> float:
        started = time.perf_counter()
        explain_patients(model, X_train, X_test, spec, options)
        return time.perf_counter() - started

    print(f"{args.family}: {len(X_test)} test patients, {options.num_samples} samples, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} before")
    plain_times, our_times = [], []
    for number in range(1, args.rounds + 1):
        plain_times.append(plain())
        our_times.append(ours())
        print(f"  round {number}: plain {len(rows) / plain_times[-1]:5.1f}/s   "
              f"ours {len(rows) / our_times[-1]:5.1f}/s   ({plain_times[-1] / our_times[-1]:.2f}x)", flush=True)
    plain_median, our_median = statistics.median(plain_times), statistics.median(our_times)
    print(f"median: plain loop {len(rows) / plain_median:.1f} patients/s, heartml.explain "
          f"{len(rows) / our_median:.1f} patients/s ({args.n_jobs} workers, batches of {args.batch_size}): "
          f"{plain_median / our_median:.2f}x; load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
