"""Cross-validated ROC-AUC of each preprocessing / feature-engineering option on the default dataset.

    python bench/feature_options.py [--folds 5] [--families xgboost logistic_regression]

5-fold stratified CV on the training split of configs/training.yaml's split, every transform refitted inside
each fold; each row switches one option on top of the shipped defaults. The figures in
docs/development/benchmarks.md come from here.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from heartml.core.dataset import load_dataset_spec  # noqa: E402
from heartml.core.features import FeatureOptions, build_feature_pipeline  # noqa: E402
from heartml.core.modeling import assemble_model, cross_validate, make_estimator, stratified_folds  # noqa: E402
from heartml.core.preprocessing import (  # noqa: E402
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    split_frame,
)
from heartml.core.sources import read_source  # noqa: E402

VARIANTS = {
    "defaults (IQR clip)": ({}, {}),
    "no outlier handling": ({"outliers": {"method": "none"}}, {}),
    "z-score flag": ({"outliers": {"method": "zscore", "action": "flag"}}, {}),
    "knn imputation": ({"numeric_imputation": "knn"}, {}),
    "robust scaling": ({"scaling": "robust"}, {}),
    "ordinal encoding": ({"categorical_encoding": "ordinal"}, {}),
    "age bands": ({}, {"age_bands": {"enabled": True}}),
    "age bands + group relative": ({}, {"age_bands": {"enabled": True}, "group_relative": {"enabled": True}}),
    "pairwise interactions": ({}, {"polynomial": {"enabled": True}}),
    "SelectKBest k=10": ({}, {"selection": {"method": "kbest", "k": 10}}),
    "PCA 8": ({}, {"pca_components": 8}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--families", nargs="+", default=["xgboost", "logistic_regression"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")
    cleaned, _ = clean_frame(read_source(spec.default_source, spec.read_options), spec)
    train, _ = split_frame(cleaned, spec, SplitOptions())
    X, y = features_and_target(train, spec)
    print(f"{'option':30s}" + "".join(f"{family:>22s}" for family in args.families) + f"{'features':>10s}")
    for name, (preprocessing, features) in VARIANTS.items():
        pipeline = build_feature_pipeline(build_preprocessor(PreprocessingOptions(**preprocessing), spec),
                                          FeatureOptions(**features), spec)
        cells = []
        for family in args.families:
            started = time.perf_counter()
            scores = np.array(cross_validate(assemble_model(pipeline, make_estimator(family, {}, seed=42, n_jobs=2)),
                                             X, y, stratified_folds(y, args.folds, seed=42), "roc_auc").scores)
            cells.append(f"{scores.mean():.4f} ± {scores.std():.3f} {time.perf_counter() - started:4.1f}s")
        width = pipeline.fit(X, y).transform(X).shape[1]
        print(f"{name:30s}" + "".join(f"{cell:>22s}" for cell in cells) + f"{width:>10d}", flush=True)


if __name__ == "__main__":
    main()
