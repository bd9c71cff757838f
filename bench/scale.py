"""The training pipeline on synthetic patients (heartml.core.synthetic) of growing size, with a fixed small tuning
budget.

    python bench/scale.py [--sizes 10000 100000 1000000 10000000] [--config bench/configs/scale.yaml] [--json FILE]

One fresh project copy and ZenML store for the whole series; each size is a Parquet file passed with --source, so
from the second size on the promotion gate also scores the previous size's model. Per step: seconds (ZenML store)
and the peak memory sampled while it ran, of the run.py process (RSS) and of the whole process tree (PSS, CV and
LIME workers included). Targets: 1M rows within 2 GiB (and, with run_all.py --baseline, in 0.6x the time of the
baseline commit), 10M rows within 12 GiB and 10x the 1M time.
"""

from __future__ import annotations

import argparse
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
    workspace = new_workspace(base / "scale")
    runs: List[Dict[str, Any]] = []
    for rows in sizes:
        data = synthetic_file(workspace.project / "data", rows)
        result = run_training(workspace, config, str(data), tag=f"scale-{rows}")
        runs.append({"rows": rows, **result})
        heaviest = max(result["steps"].items(), key=lambda item: item[1]["seconds"])
        print(f"  {rows:>9,} rows: {result['wall_seconds']:6.1f} s, peak {result['peak_pss_tree_mib']:,} MiB "
              f"(process tree, PSS), largest process {result['peak_rss_process_mib']:,} MiB; slowest step "
              f"{heaviest[0]} {heaviest[1]['seconds']:.1f} s; load {result['load_before']}", flush=True)
    return {"config": config, "runs": runs, "target_peak_mib": {str(k): v for k, v in TARGET_PEAK_MIB.items()},
            "linear": list(LINEAR)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--config", default="bench/configs/scale.yaml", help="run config, relative to the project")
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as base:
        write_json(args.json, scale(Path(base), args.sizes, args.config))


if __name__ == "__main__":
    main()
