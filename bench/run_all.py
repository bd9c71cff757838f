"""Every benchmark of the project in one run: a table of the seven figures against their targets, and a JSON file.

    python bench/run_all.py                          # the figures in docs/development/benchmarks.md (~45 min on 2
                                                     # cores, 10M rows ~20 of it; ~70 min with --baseline)
    python bench/run_all.py --quick                  # a smoke run of every figure on tiny inputs (a few minutes)
    python bench/run_all.py --only lime inference    # re-measure some figures, keep the others of the JSON file
    python bench/run_all.py --markdown               # measure, then print the table as Markdown
    python bench/run_all.py --table --markdown       # the last run's table (what the docs show), no measuring
    python bench/run_all.py --baseline 1733fa9       # also that commit's overhead, scale and quality figures,
                                                     # from a clean worktree, side by side with ours: the ratios
                                                     # (overhead rounds alternate: theirs, ours, ours, theirs)

1. overhead   `python run.py --stack local` cold and fully cached vs the same computation without ZenML
              (bench/overhead.py, bench/bare_training.py)
2. scale      the training pipeline on 10k, 100k and 1M synthetic patients: wall time, peak memory, per step
              (bench/scale.py, bench/configs/scale.yaml)
3. lime       explanations per second vs a plain explain_instance loop (bench/lime_speed.py)
4. inference  rows per second of the predict step vs a bare predict_proba, 1M rows (bench/inference_speed.py)
5. quality    nested 5x5 CV ROC-AUC and Brier of what model building builds, on heart.csv (bench/quality.py)
6. serving    `python run.py serve` vs `mlflow models serve` on the same model, driven by locust: p50 / p99 for one
              and for 100 patients, requests/s with concurrent users (bench/serving_speed.py)
7. shap       SHAP values per second of the tree models, as the explain_with_shap step computes them
              (bench/shap_speed.py)

Each figure runs in processes of its own, one after the other, and records the 1-minute load average with it:
other work on the machine slows the timings down. `--quick` measures the same things with tiny budgets
(bench/configs/quick.yaml; the overhead run on 2000 synthetic patients doubles as the scale figure); its numbers
only show that every figure can be produced, they are not compared with the targets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from common import ROOT
from measure import load_average, machine
from overhead import overhead, overhead_round, summarize
from pipeline import Workspace, new_workspace
from scale import LINEAR, SIZES, TARGET_PEAK_MIB, scale, synthetic_file

FIGURES = ("overhead", "scale", "lime", "inference", "quality", "serving", "shap")
# Against the baseline commit (--baseline), on the same machine in the same run.
TARGET_COLD_RATIO, TARGET_CACHED_RATIO, TARGET_SCALE_RATIO = 0.6, 0.5, 0.6
BASELINE_SIZES = (1_000_000,)
DEFAULT_JSON = {False: ROOT / "test-output" / "bench.json", True: ROOT / "test-output" / "bench-quick.json"}
QUICK_CONFIG = "bench/configs/quick.yaml"
QUICK_ROWS = 2000
INFERENCE_ROWS = {False: 1_000_000, True: 20_000}
QUALITY_ROC_AUC, QUALITY_BRIER = 0.935, 0.10  # nested, on heart.csv


def run_script(script: str, args: List[str], workspace: Optional[Workspace] = None,
               ok_codes: Tuple[int, ...] = (0,)) -> Dict[str, Any]:
    """A bench script in a process of its own (in a workspace, for the ones that need its ZenML store)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        result = subprocess.run([sys.executable, f"bench/{script}", *args, "--json", str(out)],
                                cwd=workspace.project if workspace else ROOT,
                                env=workspace.env if workspace else None, capture_output=True, text=True)
        if result.returncode not in ok_codes:
            raise RuntimeError(f"bench/{script} exited {result.returncode}\n{result.stdout[-3000:]}\n"
                               f"{result.stderr[-5000:]}")
        print("\n".join("    " + line for line in result.stdout.strip().splitlines()), flush=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


class Benchmarks:
    """The figures of one bench/run_all.py run; workspaces and data go under `base`."""

    def __init__(self, base: Path, quick: bool, baseline: Optional["Baseline"] = None):
        self.base, self.quick, self.baseline = base, quick, baseline
        self.data = base / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.model_workspace: Optional[Workspace] = None  # holds a production model after the overhead figure
        self.figures: Dict[str, Any] = {}

    def overhead(self) -> Dict[str, Any]:
        rounds, config = (1, QUICK_CONFIG) if self.quick else (2, "configs/training.yaml")
        source = str(synthetic_file(self.data, QUICK_ROWS)) if self.quick else None
        if self.baseline:
            figure = self._overhead_against_baseline(rounds, config, source)
        else:
            figure = overhead(self.base, config, rounds=rounds, source=source)
        self.model_workspace = new_workspace(self.base / "overhead-1")  # the first round's, with its models
        return figure

    def _overhead_against_baseline(self, rounds: int, config: str, source: Optional[str]) -> Dict[str, Any]:
        """Each round of ours beside one of the baseline's, in the order baseline-ours, ours-baseline, ... (ABBA):
        the machine's speed drifts over the minutes of a run, and this way the drift weighs on both alike."""
        assert self.baseline is not None
        ours: List[Dict[str, Any]] = []
        theirs: List[Dict[str, Any]] = []
        arguments = ["--config", config, "--rounds", "1", *(["--source", source] if source else [])]
        for number in range(1, rounds + 1):
            for side in ("baseline", "ours") if number % 2 else ("ours", "baseline"):
                if side == "baseline":
                    theirs += self.baseline.figure("overhead.py", arguments)["rounds"]
                else:
                    ours.append(overhead_round(self.base, config, number, source))
        before = {"revision": self.baseline.revision, **summarize(theirs, config, source)}
        return {**summarize(ours, config, source), "baseline": before}

    def scale(self) -> Dict[str, Any]:
        if not self.quick:
            if not self.baseline:
                return scale(self.base, SIZES)
            # Ours at the baseline's sizes right after the baseline's runs, not after the smaller sizes of ours: the
            # machine's speed drifts over minutes (ordered by rows again for the tables).
            before = self.baseline.figure("scale.py", ["--sizes", *map(str, BASELINE_SIZES)])
            figure = scale(self.base, [*BASELINE_SIZES, *(rows for rows in SIZES if rows not in BASELINE_SIZES)])
            figure["runs"].sort(key=lambda run: run["rows"])
            return {**figure, "baseline": before}
        # The quick overhead run (cold, on synthetic patients) is the scale figure's one size.
        cold = (self.figures.get("overhead") or self.overhead())["rounds"][0]["cold"]
        return {"config": QUICK_CONFIG, "runs": [{"rows": QUICK_ROWS, **cold}],
                "target_peak_mib": {str(k): v for k, v in TARGET_PEAK_MIB.items()}, "linear": list(LINEAR)}

    def lime(self) -> Dict[str, Any]:
        quick = ["--patients", "16", "--rounds", "1", "--num-samples", "500"] if self.quick else []
        return run_script("lime_speed.py", quick)

    def inference(self) -> Dict[str, Any]:
        workspace = self.model_workspace or self._trained_workspace()
        records = synthetic_file(self.data, INFERENCE_ROWS[self.quick], target=False, seed=1)
        return run_script("inference_speed.py", ["--input", str(records), "--rounds", "1" if self.quick else "6"],
                          workspace)

    def quality(self) -> Dict[str, Any]:
        quick = ["--config", QUICK_CONFIG, "--folds", "2", "--repeats", "1"] if self.quick else []
        goals = ["--target", str(QUALITY_ROC_AUC), "--max-brier", str(QUALITY_BRIER)]
        before = self.baseline.figure("quality.py", quick + self.baseline.nested_flag(), ok_codes=(0, 1)) \
            if self.baseline else None
        figure = run_script("quality.py", [*(["--config", str(ROOT / QUICK_CONFIG)] if self.quick else []),
                                           *quick[2:], *goals], ok_codes=(0, 1))  # 1: measured, a goal missed
        return {**figure, **({"baseline": before} if before else {})}

    def serving(self) -> Dict[str, Any]:
        workspace = self.model_workspace or self._trained_workspace()
        self.model_workspace = workspace
        return run_script("serving_speed.py", ["--seconds", "2" if self.quick else "15", "--users", "8"], workspace,
                          ok_codes=(0, 1))  # 1: measured, a goal missed

    def shap(self) -> Dict[str, Any]:
        return run_script("shap_speed.py", ["--patients", "200", "--rounds", "1"] if self.quick else [])

    def _trained_workspace(self) -> Workspace:
        """For `--only inference`: a workspace with a production model (one training run)."""
        workspace = new_workspace(self.base / "inference-model")
        config = QUICK_CONFIG if self.quick else "configs/training.yaml"
        subprocess.run([sys.executable, "run.py", "--stack", "local", "--config", config], cwd=workspace.project,
                       env=workspace.env, check=True, capture_output=True, text=True)
        return workspace


class Baseline:
    """Another commit's benchmarks, run from a clean worktree of it (its own code, configs and bench scripts, this
    checkout's Python environment and memory sampler, `bench/measure.py`), so that its figures and ours come from one
    machine in one run, measured the same way."""

    def __init__(self, revision: str, base: Path):
        self.revision = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout.strip()
        self.folder = base / f"baseline-{self.revision}"
        subprocess.run(["git", "worktree", "add", "--detach", str(self.folder), self.revision], cwd=ROOT,
                       check=True, capture_output=True, text=True)
        # The harness is this checkout's, the code measured the commit's: both sides sampled the same way.
        shutil.copy2(ROOT / "bench" / "measure.py", self.folder / "bench" / "measure.py")

    def close(self) -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(self.folder)], cwd=ROOT, capture_output=True)

    def nested_flag(self) -> List[str]:
        """Its quality.py's nested mode (a flag before the trust work, the default after)."""
        return ["--nested"] if "--nested" in (self.folder / "bench" / "quality.py").read_text() else []

    def figure(self, script: str, args: List[str], ok_codes: Tuple[int, ...] = (0,)) -> Dict[str, Any]:
        print(f"  baseline {self.revision}: bench/{script} {' '.join(args)}", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = Path(handle.name)
        try:
            result = subprocess.run([sys.executable, f"bench/{script}", *args, "--json", str(out)], cwd=self.folder,
                                    capture_output=True, text=True)
            if result.returncode not in ok_codes:
                raise RuntimeError(f"baseline bench/{script} exited {result.returncode}\n{result.stderr[-5000:]}")
            print("\n".join("    " + line for line in result.stdout.strip().splitlines()), flush=True)
            return {"revision": self.revision, **json.loads(out.read_text())}
        finally:
            out.unlink(missing_ok=True)


def quality_roc_auc(figure: Dict[str, Any]) -> Tuple[float, float]:
    """(mean, std) of a quality figure, in the layout of today's quality.py or of one before the trust work."""
    if "roc_auc" in figure:
        return figure["roc_auc"]["mean"], figure["roc_auc"]["std"]
    return figure["mean"], figure["std"]


# ----------------------------------------------------------------------------------------------------------------
# The table


def _mib(value: int) -> str:
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value} MiB"


def summary_rows(figures: Dict[str, Any], quick: bool) -> List[Tuple[str, str, str, str, str]]:
    """(figure, measured, target, meets, load average) per line."""
    rows: List[Tuple[str, str, str, str, str]] = []

    def add(name: str, measured: str, target: str, meets: Optional[bool], load: Any) -> None:
        verdict = "n/a (quick)" if quick else "-" if meets is None else "yes" if meets else "NO"
        rows.append((name, measured, target, verdict, f"{load}"))

    if "overhead" in figures:
        o = figures["overhead"]
        load = "/".join(str(r["bare"]["load_before"]) for r in o["rounds"])
        add("1. overhead: pipeline cold / bare script",
            f"{o['cold_seconds']:.1f} s / {o['bare_seconds']:.1f} s = {o['ratio']:.2f}", f"<= {o['target_ratio']}",
            o["ratio"] <= o["target_ratio"], load)
        add("1. overhead: pipeline fully cached", f"{o['cached_seconds']:.1f} s",
            f"<= {o['target_cached_seconds']:g} s", o["cached_seconds"] <= o["target_cached_seconds"],
            "/".join(str(r["cached"]["load_before"]) for r in o["rounds"]))
        if "baseline" in o:
            b = o["baseline"]
            for kind, target in (("cold", TARGET_COLD_RATIO), ("cached", TARGET_CACHED_RATIO)):
                ratio = o[f"{kind}_seconds"] / b[f"{kind}_seconds"]
                floor = o.get("floor_seconds") if kind == "cached" else None
                note = f" (ZenML's floor {floor:.1f} s = {floor / b['cached_seconds']:.2f}x)" if floor else ""
                add(f"1. {kind} run vs {b['revision']}", f"{o[f'{kind}_seconds']:.1f} s vs {b[f'{kind}_seconds']:.1f} s"
                    f" = {ratio:.2f}x{note}", f"<= {target}x", ratio <= target,
                    "/".join(str(r[kind]["load_before"]) for r in b["rounds"]))
    if "scale" in figures:
        s = figures["scale"]
        wall = {run["rows"]: run["wall_seconds"] for run in s["runs"]}
        for run in s["runs"]:
            peak = s["target_peak_mib"].get(str(run["rows"]))
            add(f"2. scale: {run['rows']:,} rows, wall / peak memory",
                f"{run['wall_seconds']:.0f} s / {_mib(run['peak_pss_tree_mib'])}",
                f"- / <= {_mib(peak)}" if peak else "-", run["peak_pss_tree_mib"] <= peak if peak else None,
                run["load_before"])
        big, small = s["linear"]
        if big in wall and small in wall:
            add(f"2. scale: {big:,} rows vs {small:,} (linear)", f"{wall[big] / wall[small]:.1f}x the time",
                f"<= {big / small:g}x", wall[big] / wall[small] <= big / small, "-")
        for before in s.get("baseline", {}).get("runs", []):
            (ours,) = [run for run in s["runs"] if run["rows"] == before["rows"]] or [None]
            if ours:
                ratio = ours["wall_seconds"] / before["wall_seconds"]
                add(f"2. scale: {before['rows']:,} rows vs {s['baseline']['revision']}",
                    f"{ours['wall_seconds']:.0f} s vs {before['wall_seconds']:.0f} s = {ratio:.2f}x",
                    f"<= {TARGET_SCALE_RATIO}x", ratio <= TARGET_SCALE_RATIO, before["load_before"])
    if "lime" in figures:
        lime = figures["lime"]
        add(f"3. LIME: patients/s, heartml vs plain loop ({lime['patients']} patients)",
            f"{lime['ours_patients_per_second']:.1f} vs {lime['plain_patients_per_second']:.1f} = "
            f"{lime['speedup']:.2f}x" + ("" if lime.get("results_equal", True) else ", explanations NOT equal"),
            f">= {lime['target_speedup']:g}x, equal", lime["speedup"] >= lime["target_speedup"]
            and lime.get("results_equal", True), lime["load_before"])
    if "inference" in figures:
        i = figures["inference"]
        add(f"4. inference: rows/s, predict step vs bare predict_proba ({i['rows']:,} rows)",
            f"{i['step_rows_per_second']:,} vs {i['bare_rows_per_second']:,} = {i['ratio']:.2f}",
            f">= {i['target_ratio']}", i["ratio"] >= i["target_ratio"], i["load_before"])
    if "quality" in figures:
        q = figures["quality"]
        kind = "nested" if q.get("nested") else "non-nested"
        add(f"5. quality: {kind} {q['repeats']}x{q['folds']} CV ROC-AUC / Brier",
            f"{q['roc_auc']['mean']:.4f} ± {q['roc_auc']['std']:.4f} / {q['brier']['mean']:.4f}",
            f">= {QUALITY_ROC_AUC} / <= {QUALITY_BRIER}", q["goals_met"], "-")
        if "baseline" in q:
            (mean, std), (before, before_std) = quality_roc_auc(q), quality_roc_auc(q["baseline"])
            add(f"5. quality: nested ROC-AUC vs {q['baseline']['revision']}",
                f"{mean:.4f} ± {std:.4f} vs {before:.4f} ± {before_std:.4f}", "not lower", mean >= before, "-")
    if "serving" in figures:
        served = figures["serving"]
        ours, mlflow = served["results"]["heartml"], served["results"]["mlflow"]
        add("6. serving: one patient p50 / p99, run.py serve (mlflow models serve)",
            f"{ours['one_patient']['p50_ms']:.0f} / {ours['one_patient']['p99_ms']:.0f} ms "
            f"({mlflow['one_patient']['p50_ms']:.0f} / {mlflow['one_patient']['p99_ms']:.0f} ms)",
            f"<= {served['targets']['p50_ms_1']:g} / {served['targets']['p99_ms_1']:g} ms",
            served["met"]["p50_ms_1"] and served["met"]["p99_ms_1"], served["load_average"])
        add("6. serving: 100 patients p50 / p99", f"{ours['hundred_patients']['p50_ms']:.0f} / "
            f"{ours['hundred_patients']['p99_ms']:.0f} ms ({mlflow['hundred_patients']['p50_ms']:.0f} / "
            f"{mlflow['hundred_patients']['p99_ms']:.0f} ms)", "-", None, served["load_average"])
        add(f"6. serving: requests/s, {served['users']} users, one patient each",
            f"{ours['concurrent']['requests_per_s']:.0f} vs {mlflow['concurrent']['requests_per_s']:.0f}",
            ">= mlflow's", served["met"]["throughput"], served["load_average"])
    if "shap" in figures:
        shap = figures["shap"]
        rates = {family: result["patients_per_second"] for family, result in shap["families"].items()}
        target = shap["target_patients_per_second"]
        algorithms = " / ".join(str(result.get("tree_algorithm") or f"interventional, {shap['background_rows']} rows")
                                .replace("_", "-") for result in shap["families"].values())
        add(f"7. SHAP: patients/s, {' / '.join(rates)} (TreeSHAP: {algorithms})",
            " / ".join(f"{rate:,.0f}" for rate in rates.values()), f">= {target:,.0f}",
            all(rate >= target for rate in rates.values()), shap["load_before"])
    return rows


def print_rows(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> None:
    if markdown:
        for row in [header, ["---"] * len(header), *rows]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def print_table(figures: Dict[str, Any], quick: bool, markdown: bool) -> None:
    print_rows(("figure", "measured", "target", "meets", "load avg"), summary_rows(figures, quick), markdown)
    if "scale" in figures:
        print()
        print_rows(*scale_steps(figures["scale"]), markdown)


def scale_steps(figure: Dict[str, Any]) -> Tuple[List[str], List[List[str]]]:
    """Seconds and peak memory (process tree, PSS) of every step at every size."""
    runs = figure["runs"]
    header = ["step", *[f"{run['rows']:,} rows" for run in runs]]
    rows = [[step, *[f"{run['steps'][step]['seconds']:.1f} s, {_mib(run['steps'][step]['peak_pss_tree_mib'])}"
                     for run in runs]] for step in runs[0]["steps"]]
    rows.append(["whole run (run.py)", *[f"{run['wall_seconds']:.1f} s, {_mib(run['peak_pss_tree_mib'])}"
                                         for run in runs]])
    return header, rows


# ----------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny inputs and budgets: a smoke run of every figure")
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="measure only these figures; the others are "
                                                                   "kept from the existing JSON file")
    parser.add_argument("--json", type=Path, help="where the figures go [default: test-output/bench.json, with "
                                                  "--quick test-output/bench-quick.json]")
    parser.add_argument("--work", type=Path, help="keep workspaces and data here (default: a temporary folder)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--table", action="store_true", help="measure nothing: print the table of the JSON file")
    parser.add_argument("--baseline", metavar="REV", help="also measure the overhead, scale (1M rows) and quality "
                                                          "figures of commit REV, each just before ours")
    args = parser.parse_args()
    args.json = args.json or DEFAULT_JSON[args.quick]
    if args.table:
        if not args.json.exists():
            parser.error(f"{args.json} does not exist: run the benchmarks first")
        report = json.loads(args.json.read_text())
        print_report(report, args.json, args.markdown)
        return

    report: Dict[str, Any] = {}
    if args.only and args.json.exists():
        report = json.loads(args.json.read_text())
        if report.get("quick") != args.quick:
            parser.error(f"{args.json} holds a {'quick' if report.get('quick') else 'full'} run; --only would mix")
    figures: Dict[str, Any] = report.setdefault("figures", {})
    report.update({"quick": args.quick, "machine": machine(),
                   "command": "python bench/run_all.py " + " ".join(sys.argv[1:])})

    with (nullcontext(str(args.work)) if args.work else tempfile.TemporaryDirectory(prefix="bench-")) as base:
        baseline = Baseline(args.baseline, Path(base)) if args.baseline else None
        benchmarks = Benchmarks(Path(base), args.quick, baseline)
        benchmarks.figures = figures
        try:
            measure_figures(benchmarks, args.only or FIGURES, report, args.json)
        finally:
            if baseline:
                baseline.close()
    print()
    print_report(report, args.json, args.markdown)


def measure_figures(benchmarks: Benchmarks, names: Sequence[str], report: Dict[str, Any], path: Path) -> None:
    figures = report["figures"]
    for name in names:
        print(f"{name} (load average {load_average()})", flush=True)
        started = time.perf_counter()
        measure: Callable[[], Dict[str, Any]] = getattr(benchmarks, name)
        figures[name] = {**measure(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "bench_seconds": round(time.perf_counter() - started, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))  # after every figure: a long run keeps what it has


def print_report(report: Dict[str, Any], path: Path, markdown: bool) -> None:
    m = report["machine"]
    print(f"{m['nproc']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Python {m['python']}; "
          f"{report['command']}; figures in {path}")
    print_table(report["figures"], report["quick"], markdown)


if __name__ == "__main__":
    main()
