"""`python run.py` as a user runs it, in a throw-away copy of the project with its own ZenML store, measured:
wall time and memory of the whole process tree, and per step its duration (from the ZenML store) and the peak
memory sampled while it ran. The local orchestrator runs the steps one after another inside the run.py process,
so the samples taken between a step's start and end belong to that step (and to the workers it started)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from common import ROOT
from measure import MIB, Measured, run_measured

sys.path.insert(0, str(ROOT))
from tests.conftest import Workspace, make_workspace  # noqa: E402  (the same throw-away copy the tests use)

_STEP_TIMES = """
import json, sys
from zenml.client import Client
run = Client().get_pipeline_run(sys.argv[1])
print(json.dumps({name: [s.start_time.isoformat(), s.end_time.isoformat(), s.status.value]
                  for name, s in run.steps.items()}))
"""


_workspaces: Dict[Path, Workspace] = {}


def new_workspace(base: Path) -> Workspace:
    """A copy of the project with its own ZenML store under `base`, made on the first call for that folder."""
    if base not in _workspaces:
        base.mkdir(parents=True, exist_ok=True)
        _workspaces[base] = make_workspace(base)
    return _workspaces[base]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()  # ZenML stores naive UTC


def step_times(workspace: Workspace, run_id: str) -> Dict[str, Any]:
    """Start, end and status of every step of a run, read from the workspace's ZenML store."""
    result = subprocess.run([sys.executable, "-c", _STEP_TIMES, run_id], cwd=workspace.project, env=workspace.env,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_training(workspace: Workspace, config: str, source: Optional[str] = None, tag: str = "run") -> Dict[str, Any]:
    """One `python run.py --stack local --config CONFIG [--source URI]`; its figures, per step too."""
    summary = workspace.project / "out" / f"{tag}-summary.json"
    command = [sys.executable, "run.py", "--stack", "local", "--config", config, "--summary-json", str(summary)]
    if source:
        command += ["--source", source]
    measured = run_measured(command, workspace.project, workspace.env).check()
    run_id = json.loads(summary.read_text())["run_id"]
    steps = {}
    for name, (start, end, status) in step_times(workspace, run_id).items():
        peaks = measured.peaks_between(_epoch(start), _epoch(end))
        steps[name] = {"seconds": round(_epoch(end) - _epoch(start), 2), "status": status,
                       "peak_rss_main_mib": peaks["main"] // MIB, "peak_pss_tree_mib": peaks["tree"] // MIB}
    return {**process_figures(measured), "run_id": run_id, "steps": steps}


def process_figures(measured: Measured) -> Dict[str, Any]:
    return {"wall_seconds": round(measured.wall, 2), "peak_rss_process_mib": measured.peak_rss_process // MIB,
            "peak_pss_tree_mib": measured.peak_pss_tree // MIB, "load_before": round(measured.load_before, 2)}
