"""Nested cross-validated quality of what the training config builds, on any dataset description.

    python bench/quality.py                                   # heart.csv, nested 5x5
    python bench/quality.py --dataset configs/datasets/heart_failure_records.yaml
    python bench/quality.py --repeats 1                       # nested 5x1, a fifth of the time
    python bench/quality.py --non-nested                      # the optimistic figure, to see the optimism

Nested (the default, the figure the docs publish): every outer fold of a repeated stratified K-fold over all
cleaned rows runs the whole of model building on its training part, as the pipeline's `model_building` step does
(tuning and family selection inside inner CV, calibration, then the decision threshold by the configured rule on
the inner out-of-fold predictions), and the model it returns is scored on the outer fold it never saw.

`--non-nested` selects once on the pipeline's training split and cross-validates that configuration over all
rows: the tuning saw most of the rows it is scored on, so it reads high.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from common import DEFAULT_CONFIG, training_setup, write_json
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold

from heartml.core.evaluation import SELECTED_OOF, classification_metrics
from heartml.core.modeling import assemble_model
from heartml.core.preprocessing import features_and_target
from heartml.core.selection import select_model

REPORTED = ("roc_auc", "brier", "mcc", "recall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--dataset", help="a dataset description, in place of the config's (as run.py --dataset)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cv-seed", type=int, default=0, help="seed of the outer CV (not the run's seed)")
    parser.add_argument("--target", type=float, default=None, help="ROC-AUC goal (default: none)")
    parser.add_argument("--max-brier", type=float, default=None, help="Brier goal (default: none)")
    parser.add_argument("--min-mcc", type=float, default=None, help="MCC goal (default: none)")
    parser.add_argument("--non-nested", action="store_true", help="select once on the training split (optimistic)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    setup = training_setup(args.config, args.dataset)
    modeling, features = setup.modeling, setup.features
    if modeling.tuning:
        modeling.tuning.progress_bar = False
    X, y = features_and_target(setup.cleaned, setup.dataset)
    outer = list(RepeatedStratifiedKFold(n_splits=args.folds, n_repeats=args.repeats,
                                         random_state=args.cv_seed).split(X, y))
    kind = "optimistic (non-nested)" if args.non_nested else "nested"
    label = (f"{kind} {args.repeats}x{args.folds} stratified CV on {len(X)} rows of {setup.dataset.name} "
             f"({setup.source})")
    started = time.perf_counter()
    folds, selected = [], []
    if args.non_nested:
        X_train, y_train = features_and_target(setup.train, setup.dataset)
        selection = select_model(X_train, y_train, features, modeling)
        model = assemble_model(features, selection.candidates[selection.selected].estimator(modeling.seed))
        threshold = setup.threshold_rule.choose(y_train.to_numpy(),
                                                selection.cv_predictions(y_train)[SELECTED_OOF].to_numpy())
        for train, test in outer:
            proba = clone(model).fit(X.iloc[train], y.iloc[train]).predict_proba(X.iloc[test])[:, 1]
            folds.append(classification_metrics(y.iloc[test], proba, threshold))
        selected = [selection.selected]
    else:
        for number, (train, test) in enumerate(outer, 1):
            y_train = y.iloc[train]
            selection = select_model(X.iloc[train], y_train, features, modeling)
            threshold = setup.threshold_rule.choose(y_train.to_numpy(),
                                                    selection.cv_predictions(y_train)[SELECTED_OOF].to_numpy())
            proba = selection.model.predict_proba(X.iloc[test])[:, 1]
            folds.append(classification_metrics(y.iloc[test], proba, threshold))
            selected.append(f"{selection.selected}/{selection.calibration.method}")
            print(f"  outer fold {number}/{len(outer)}: {selected[-1]}, threshold {threshold:.2f}, "
                  + ", ".join(f"{m} {folds[-1][m]:.3f}" for m in REPORTED), flush=True)
    seconds = time.perf_counter() - started
    summary = {m: {"mean": round(float(np.mean([f[m] for f in folds])), 4),
                   "std": round(float(np.std([f[m] for f in folds])), 4)} for m in REPORTED}
    print(f"{label}, threshold rule {setup.threshold_rule.describe()}:")
    for metric in REPORTED:
        print(f"  {metric:8s} {summary[metric]['mean']:.4f} ± {summary[metric]['std']:.4f}")
    goals = [("roc_auc", args.target, lambda v, g: v >= g), ("brier", args.max_brier, lambda v, g: v <= g),
             ("mcc", args.min_mcc, lambda v, g: v >= g)]
    met = True
    for metric, goal, reached in goals:
        if goal is not None:
            ok = reached(summary[metric]["mean"], goal)
            met &= ok
            print(f"  {'meets' if ok else 'MISSES'} the {metric} goal {goal:g}")
    print(f"  {seconds:.0f} s")
    write_json(args.json, {"config": str(args.config), "dataset": setup.dataset.name, "source": setup.source,
                           "nested": not args.non_nested, "folds": args.folds, "repeats": args.repeats,
                           "rows": len(X), "threshold_rule": setup.threshold_rule.describe(), "selected": selected,
                           **summary, "seconds": round(seconds, 1), "goals_met": met})
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
