"""Synthetic patients with the schema and statistics of a dataset (heartml.core.synthetic), written as a Parquet file.

    python bench/synthetic_data.py --rows 1000000 --out data/synthetic-1m.parquet [--seed 0] [--no-target]

The copula is fitted to the dataset description's default source (the bundled data); `--no-target` drops the
target column, e.g. for batch inference input. Used by bench/run_all.py for the scale and inference figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT

from heartml.core.dataset import load_dataset_spec
from heartml.core.sources import read_source
from heartml.core.synthetic import synthetic_patients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=str(ROOT / "configs" / "datasets" / "heart.yaml"))
    parser.add_argument("--no-target", action="store_true")
    args = parser.parse_args()
    spec = load_dataset_spec(args.dataset)
    started = time.perf_counter()
    frame = synthetic_patients(read_source(spec.default_source, spec.read_options), args.rows,
                               target=spec.target.column, seed=args.seed)
    if args.no_target:
        frame = frame.drop(columns=[spec.target.column])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"{args.rows} synthetic rows -> {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
