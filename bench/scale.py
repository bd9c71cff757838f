"""The training pipeline on synthetic patients (heartml.core.synthetic) of growing size, with a fixed small tuning
budget.

    python bench/scale.py [--sizes 10000 100000 1000000 10000000] [--config bench/configs/scale.yaml] [--json FILE]
    python bench/scale.py --in-process [--sizes ...]   # model building alone, where its seconds go

Each size runs cold in a fresh project copy and ZenML store of its own, as a Parquet file passed with --source: no
size is warm-started from another's registered model, so every size tries the same parameters and the times
compare. Per step: seconds (ZenML store) and the peak memory sampled while it ran, of the run.py process (RSS) and
of the whole process tree (PSS, CV and LIME workers included). Targets: 1M rows within 2 GiB (and, with run_all.py
--baseline, in 0.6x the time of the baseline commit), 10M rows within 12 GiB and 10x the 1M time.

`--in-process` runs bench/model_building.py per size instead (`select_model` alone, in a process of its own) and
prints how each of its parts grows from one size to the next against the rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

from common import ROOT, write_json
from pipeline import new_workspace, run_training

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
TARGET_PEAK_MIB = {1_000_000: 2048, 10_000_000: 12288}  # process tree, PSS
LINEAR = (10_000_000, 1_000_000)  # this many rows in at most (ratio of the sizes) x the time of that many


def synthetic_file(folder: Path, rows: int, target: bool = True, seed: int = 0) -> Path:
    """Synthetic patients as a Parquet file in `folder` (made once per size; without the target: records)."""
    path = folder / f"synthetic-{rows}{'' if target else '-records'}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "synthetic_data.py"), "--rows", str(rows),
                        "--out", str(path), "--seed", str(seed), *([] if target else ["--no-target"])],
                       check=True, capture_output=True, text=True)
    return path


def scale(base: Path, sizes: Sequence[int] = SIZES, config: str = "bench/configs/scale.yaml") -> Dict[str, Any]:
    runs: List[Dict[str, Any]] = []
    for rows in sizes:
        workspace = new_workspace(base / f"scale-{rows}")
        result = run_training(workspace, config, str(synthetic_file(base / "data", rows)), tag=f"scale-{rows}")
        runs.append({"rows": rows, **result})
        heaviest = max(result["steps"].items(), key=lambda item: item[1]["seconds"])
        print(f"  {rows:>9,} rows: {result['wall_seconds']:6.1f} s, peak {result['peak_pss_tree_mib']:,} MiB "
              f"(process tree, PSS), largest process {result['peak_rss_process_mib']:,} MiB; slowest step "
              f"{heaviest[0]} {heaviest[1]['seconds']:.1f} s; load {result['load_before']}", flush=True)
    return {"config": config, "runs": runs, "target_peak_mib": {str(k): v for k, v in TARGET_PEAK_MIB.items()},
            "linear": list(LINEAR)}


def model_building_parts(figure: Dict[str, Any]) -> Dict[str, float]:
    """Seconds of each part of one bench/model_building.py figure, by name."""
    parts = {"select_model": figure["seconds"]}
    for name, family in figure["families"].items():
        if family["trials"]:
            parts[f"{name} trials"] = sum(family["trials"])
        parts[f"{name} final fit"] = family["fit_seconds"]
    parts["final fits, transforms and training scores"] = figure["final_fits_seconds"]
    return parts


def in_process(base: Path, sizes: Sequence[int], config: str) -> Dict[str, Any]:
    figures = []
    for rows in sizes:
        out = base / f"model-building-{rows}.json"
        subprocess.run([sys.executable, str(ROOT / "bench" / "model_building.py"), "--source",
                        str(synthetic_file(base / "data", rows)), "--config", config, "--json", str(out)],
                       cwd=ROOT, check=True)
        figures.append({"rows": rows, **json.loads(out.read_text())})
    for before, after in zip(figures, figures[1:]):
        growth = after["training_rows"] / before["training_rows"]
        print(f"from {before['rows']:,} to {after['rows']:,} rows ({growth:.2f}x the training rows):")
        earlier = model_building_parts(before)
        for part, seconds in model_building_parts(after).items():
            if earlier.get(part):
                print(f"  {part}: {earlier[part]:.1f} s -> {seconds:.1f} s, {seconds / earlier[part]:.2f}x")
    return {"config": config, "model_building": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--config", default="bench/configs/scale.yaml", help="run config, relative to the project")
    parser.add_argument("--in-process", action="store_true", help="model building alone (bench/model_building.py)")
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as base:
        measure = in_process if args.in_process else scale
        write_json(args.json, measure(Path(base), args.sizes, args.config))


if __name__ == "__main__":
    main()
