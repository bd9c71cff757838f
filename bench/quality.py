"""Quality of the configuration that the training config selects, on the default dataset.

    python bench/quality.py                      # configs/training.yaml, 5x5 repeated stratified CV
    python bench/quality.py --nested --repeats 1 # the whole selection (tuning included) inside every outer fold

1. Model building runs exactly as the pipeline's `model_building` step does (same split, preprocessing, features,
   families, search and seed) and selects a configuration on the training split.
2. That configuration (family and hyperparameters, unfitted: preprocessing + features + classifier) is scored with
   repeated stratified K-fold CV on the whole cleaned dataset; every transform is refitted inside each fold.

Step 2 reuses hyperparameters chosen on the pipeline's training split, which overlaps the CV data; `--nested`
removes that optimism by re-running the selection inside each outer fold's training part (slow: one full
model building per fold).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import DEFAULT_CONFIG, training_setup, write_json
from sklearn.model_selection import RepeatedStratifiedKFold

from heartml.core.modeling import assemble_model, cross_validate
from heartml.core.preprocessing import features_and_target
from heartml.core.selection import select_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cv-seed", type=int, default=0, help="seed of the repeated CV (not the tuning seed)")
    parser.add_argument("--target", type=float, default=0.93)
    parser.add_argument("--nested", action="store_true", help="re-run model selection inside every outer fold")
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()

    setup = training_setup(args.config)
    modeling, features = setup.modeling, setup.features
    if modeling.tuning:
        modeling.tuning.progress_bar = False
    X, y = features_and_target(setup.cleaned, setup.dataset)
    outer = list(RepeatedStratifiedKFold(n_splits=args.folds, n_repeats=args.repeats,
                                         random_state=args.cv_seed).split(X, y))
    label = f"{modeling.scoring}, {args.repeats}x{args.folds} repeated stratified CV on {len(X)} rows of {setup.source}"

    started = time.perf_counter()
    if args.nested:
        scores = []
        for number, (train, test) in enumerate(outer, 1):
            selection = select_model(X.iloc[train], y.iloc[train], features, modeling)
            model = assemble_model(features, selection.candidates[selection.selected].estimator(modeling.seed))
            scores.append(cross_validate(model, X, y, [(train, test)], modeling.scoring).scores[0])
            print(f"  outer fold {number}/{len(outer)}: selected {selection.selected}, {scores[-1]:.4f}", flush=True)
        mean, std, selected = float(np.mean(scores)), float(np.std(scores)), "nested"
        print(f"nested selection ({label}): {mean:.4f} ± {std:.4f}")
    else:
        X_train, y_train = features_and_target(setup.train, setup.dataset)
        selection = select_model(X_train, y_train, features, modeling)
        print(f"model building on the training split ({len(X_train)} rows) selected: {selection.selected} "
              f"(CV {selection.candidates[selection.selected].cv.mean:.4f}) in {time.perf_counter() - started:.0f} s")
        results = {}
        for name, candidate in selection.candidates.items():
            model = assemble_model(features, candidate.estimator(modeling.seed))
            results[name] = cross_validate(model, X, y, outer, modeling.scoring, modeling.n_jobs)
            marker = "  <- selected" if name == selection.selected else ""
            print(f"  {name:22s} {results[name].mean:.4f} ± {results[name].std:.4f}{marker}", flush=True)
        selected = selection.selected
        mean, std = results[selected].mean, results[selected].std
        print(f"selected configuration ({label}): {mean:.4f} ± {std:.4f}")
    seconds = time.perf_counter() - started
    print(f"{'meets' if mean >= args.target else 'MISSES'} the target {args.target:.2f} ({seconds:.0f} s)")
    write_json(args.json, {"config": str(args.config), "scoring": modeling.scoring, "folds": args.folds,
                           "repeats": args.repeats, "nested": args.nested, "selected": selected,
                           "rows": len(X), "mean": round(mean, 4), "std": round(std, 4), "target": args.target,
                           "seconds": round(seconds, 1)})
    sys.exit(0 if mean >= args.target else 1)


if __name__ == "__main__":
    main()
