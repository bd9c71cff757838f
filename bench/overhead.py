"""What ZenML adds to a training run: `python run.py --stack local` cold and fully cached, against the same
computation as a bare script (bench/bare_training.py).

    python bench/overhead.py [--config configs/training.yaml] [--rounds 2] [--json out.json]

Each round uses a fresh copy of the project with a fresh ZenML store (`ZENML_CONFIG_PATH`): the cold run (store
creation, stack registration, every step), then the same command again (every cacheable step is a cache hit,
ingestion too on unchanged data; registration, promotion and the model card run by design), and the bare script
before them in odd rounds, after them in even ones. All three are whole processes, imports included. The ratio
is cold pipeline / bare script per round; the median round is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from common import write_json
from measure import load_average, run_measured
from pipeline import Workspace, new_workspace, process_figures, run_training, step_times

TARGET_RATIO = 1.2  # speed round two (round one: 1.5)
TARGET_CACHED_SECONDS = 12.0


def bare_training(workspace: Workspace, config: str, source: Optional[str]) -> Dict[str, Any]:
    stages = workspace.project / "out" / "bare-stages.json"
    command = [sys.executable, "bench/bare_training.py", "--config", config, "--json", str(stages)]
    if source:
        command += ["--source", source]
    measured = run_measured(command, workspace.project, workspace.env).check()
    return {**process_figures(measured), "stages": json.loads(stages.read_text())["stages"]}


def zenml_floor(workspace: Workspace) -> Dict[str, Any]:
    """bench/zenml_floor.py twice in the trained workspace; the second run (its cacheable steps cached) is the
    figure: ZenML's and MLflow's cost under a cached training run, before any work of ours."""
    command = [sys.executable, "bench/zenml_floor.py", "--stack", "local"]
    run_measured(command, workspace.project, workspace.env).check()
    measured = run_measured(command, workspace.project, workspace.env).check()
    run_id = measured.stdout.split("run_id ")[-1].split()[0]
    steps = {name: {"status": status} for name, (_, _, status) in step_times(workspace, run_id).items()}
    return {**process_figures(measured), "run_id": run_id, "steps": steps}


def overhead_round(base: Path, config: str, number: int, source: Optional[str] = None) -> Dict[str, Any]:
    """Round `number` in a new workspace under `base`: the bare script first in odd rounds, last in even ones."""
    workspace = new_workspace(base / f"overhead-{number}")
    if number % 2:
        bare = bare_training(workspace, config, source)
    cold = run_training(workspace, config, source, tag="cold")
    cached = run_training(workspace, config, source, tag="cached")
    floor = zenml_floor(workspace)
    if not number % 2:
        bare = bare_training(workspace, config, source)
    result = {"bare": bare, "cold": cold, "cached": cached, "floor": floor,
              "ratio": round(cold["wall_seconds"] / bare["wall_seconds"], 3)}
    print(f"  round {number}: bare {bare['wall_seconds']:.1f} s, pipeline cold {cold['wall_seconds']:.1f} s "
          f"({result['ratio']:.2f}x), cached {cached['wall_seconds']:.1f} s (ZenML's floor "
          f"{floor['wall_seconds']:.1f} s); load {load_average()}", flush=True)
    return result


def summarize(rounds: List[Dict[str, Any]], config: str, source: Optional[str] = None) -> Dict[str, Any]:
    """The figure of these rounds: the median of each time and of the ratio (rounds of a commit from before
    the floor was measured have no floor)."""

    def median(kind: str) -> Optional[float]:
        values = [r[kind]["wall_seconds"] for r in rounds if kind in r]
        return round(statistics.median(values), 2) if values else None

    return {
        "config": config, "source": source, "rounds": rounds,
        "bare_seconds": median("bare"), "cold_seconds": median("cold"), "cached_seconds": median("cached"),
        "floor_seconds": median("floor"),
        "ratio": round(statistics.median(r["ratio"] for r in rounds), 3),
        "target_ratio": TARGET_RATIO, "target_cached_seconds": TARGET_CACHED_SECONDS,
    }


def overhead(base: Path, config: str = "configs/training.yaml", rounds: int = 2,
             source: Optional[str] = None) -> Dict[str, Any]:
    """The figure; workspaces are created under `base`. `source` overrides the config's data source."""
    return summarize([overhead_round(base, config, number, source) for number in range(1, rounds + 1)],
                     config, source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/training.yaml", help="run config, relative to the project")
    parser.add_argument("--source", help="data source URI (default: the config's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as base:
        figure = overhead(Path(base), args.config, args.rounds, args.source)
    print(f"median: bare {figure['bare_seconds']} s, pipeline cold {figure['cold_seconds']} s "
          f"(ratio {figure['ratio']}, target <= {TARGET_RATIO}), cached {figure['cached_seconds']} s "
          f"(target <= {TARGET_CACHED_SECONDS:g} s; ZenML's floor {figure['floor_seconds']} s)")
    write_json(args.json, figure)


if __name__ == "__main__":
    main()
