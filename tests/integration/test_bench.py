"""`python bench/run_all.py --quick`: every figure is measured and reported with sane values.

No timing targets here: they depend on the machine and on what else runs on it (the figures and their targets are in
docs/development/benchmarks.md, from the full run).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import OFFLINE_ENV, ROOT

PIPELINE_STEPS = {"data_ingestion", "data_preprocessing", "feature_engineering", "model_building", "explain_model",
                  "explain_with_shap", "model_evaluation", "quality_gate", "register_model", "promote_model",
                  "write_model_card"}
NEVER_CACHED = {"register_model", "promote_model", "write_model_card"}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    """The quick run, against this checkout's own last commit as the baseline (`--baseline HEAD`)."""
    base = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_TRACKING"))}
    result = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--baseline", "HEAD", "--json", str(base / "bench.json"),
         "--work", str(base)],
        cwd=ROOT, env={**env, **OFFLINE_ENV}, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-6000:]}"
    return json.loads((base / "bench.json").read_text()), result.stdout, base


@pytest.mark.integration
@pytest.mark.slow
def test_the_report_names_the_machine_and_has_every_figure(quick_bench):
    report, stdout, _ = quick_bench
    assert report["quick"] is True and report["command"].startswith("python bench/run_all.py --quick")
    assert set(report["figures"]) == {"overhead", "scale", "lime", "inference", "quality", "serving", "shap"}
    machine = report["machine"]
    assert machine["nproc"] >= 1 and machine["cpu_model"] and machine["ram_gib"] > 0
    assert machine["python"].startswith("3.11")
    for line in ("1. overhead", "2. scale", "3. LIME", "4. inference", "5. quality", "6. serving", "7. SHAP",
                 "model_building"):
        assert line in stdout, line
    assert "n/a (quick)" in stdout  # quick figures are not compared with the targets


@pytest.mark.integration
@pytest.mark.slow
def test_overhead_and_scale_figures_come_from_real_runs(quick_bench):
    overhead = quick_bench[0]["figures"]["overhead"]
    (only_round,) = overhead["rounds"]
    bare, cold, cached = only_round["bare"], only_round["cold"], only_round["cached"]
    assert overhead["ratio"] == pytest.approx(cold["wall_seconds"] / bare["wall_seconds"], rel=1e-2)
    assert 0 < cached["wall_seconds"] and 0 < bare["wall_seconds"]
    floor = only_round["floor"]  # ZenML's floor: the same shape, cached alike, steps that do nothing
    assert floor["wall_seconds"] > 0 and floor["run_id"] not in (cold["run_id"], cached["run_id"])
    assert {name: step["status"] for name, step in floor["steps"].items()} == {
        name: step["status"] for name, step in cached["steps"].items()}
    assert set(cold["steps"]) == PIPELINE_STEPS and set(bare["stages"]) >= PIPELINE_STEPS
    assert {name for name, step in cold["steps"].items() if step["status"] == "completed"} == PIPELINE_STEPS
    cached_steps = {name for name, step in cached["steps"].items() if step["status"] == "cached"}
    assert cached_steps == PIPELINE_STEPS - NEVER_CACHED
    assert cached["run_id"] != cold["run_id"]

    (run,) = quick_bench[0]["figures"]["scale"]["runs"]
    assert run["rows"] == 2000 and run["run_id"] == cold["run_id"]
    assert run["peak_pss_tree_mib"] > 100 and run["peak_rss_process_mib"] > 100  # a Python with pandas, sklearn
    for name, step in run["steps"].items():
        assert step["seconds"] >= 0 and 0 < step["peak_pss_tree_mib"] <= run["peak_pss_tree_mib"], name
    assert max(step["seconds"] for step in run["steps"].values()) < run["wall_seconds"]


@pytest.mark.integration
@pytest.mark.slow
def test_baseline_commit_is_measured_beside_ours_from_a_worktree_that_is_removed_after(quick_bench):
    report, stdout, base = quick_bench
    revision = git("rev-parse", "--short", "HEAD")
    overhead = report["figures"]["overhead"]
    before = overhead["baseline"]
    assert before["revision"] == revision and len(before["rounds"]) == len(overhead["rounds"]) == 1
    (theirs,) = before["rounds"]
    assert theirs["cold"]["run_id"] != overhead["rounds"][0]["cold"]["run_id"]  # a run of its own
    cached_steps = {name for name, step in theirs["cached"]["steps"].items() if step["status"] == "cached"}
    assert cached_steps == PIPELINE_STEPS - NEVER_CACHED
    assert before["cold_seconds"] == theirs["cold"]["wall_seconds"]
    assert before["cached_seconds"] == theirs["cached"]["wall_seconds"]
    for kind in ("cold", "cached"):
        (line,) = [row for row in stdout.splitlines() if row.startswith(f"1. {kind} run vs {revision}")]
        ours, theirs_seconds = overhead[f"{kind}_seconds"], before[f"{kind}_seconds"]
        assert f"{ours:.1f} s vs {theirs_seconds:.1f} s = {ours / theirs_seconds:.2f}x" in line, line
        assert "n/a (quick)" in line
    assert stdout.index(f"baseline {revision}: bench/overhead.py") < stdout.index("  round 1:")  # ABBA: theirs first
    quality = report["figures"]["quality"]["baseline"]
    assert quality["revision"] == revision and 0.8 < quality["roc_auc"]["mean"] <= 1
    assert f"5. quality: nested ROC-AUC vs {revision}" in stdout
    assert str(base / f"baseline-{revision}") not in git("worktree", "list")
    assert not (base / f"baseline-{revision}").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_lime_inference_quality_and_shap_figures(quick_bench):
    figures = quick_bench[0]["figures"]
    lime = figures["lime"]
    assert lime["patients"] == 16 and lime["plain_patients_per_second"] > 0 and lime["ours_patients_per_second"] > 0
    assert lime["results_equal"] is True  # the same 16 explanations both ways
    assert lime["speedup"] == pytest.approx(lime["ours_patients_per_second"] / lime["plain_patients_per_second"],
                                            rel=1e-2)
    inference = figures["inference"]
    assert inference["rows"] == 20_000 and inference["classifier"]
    assert inference["bare_rows_per_second"] > 0 and inference["step_rows_per_second"] > 0
    assert inference["ratio"] == pytest.approx(inference["step_rows_per_second"] / inference["bare_rows_per_second"],
                                               rel=1e-2)
    quality = figures["quality"]
    assert (quality["folds"], quality["repeats"], quality["rows"], quality["nested"]) == (2, 1, 918, True)
    assert len(quality["selected"]) == 2  # model building ran inside each outer fold
    assert 0.8 < quality["roc_auc"]["mean"] <= 1 and 0 <= quality["roc_auc"]["std"] < 0.1
    assert 0 < quality["brier"]["mean"] < 0.2 and -1 <= quality["mcc"]["mean"] <= 1
    shap = figures["shap"]
    assert set(shap["families"]) == {"xgboost", "random_forest"} and shap["rounds"] == 1
    for family in shap["families"].values():
        assert family["patients"] == 200 and family["method"] == "tree"
        assert family["patients_per_second"] == pytest.approx(200 / family["seconds"], rel=2e-2)


@pytest.mark.integration
@pytest.mark.slow
def test_serving_figure_drives_both_servers_with_locust(quick_bench):
    serving = quick_bench[0]["figures"]["serving"]
    assert serving["seconds"] == 2 and serving["users"] == 8
    for server in ("heartml", "mlflow"):
        runs = serving["results"][server]
        assert [runs[k]["patients"] for k in ("one_patient", "hundred_patients", "concurrent")] == [1, 100, 1]
        for run in runs.values():
            assert run["requests"] > 0 and run["failures"] == 0, (server, run)
            assert 0 < run["p50_ms"] <= run["p99_ms"] and run["requests_per_s"] > 0
    assert set(serving["met"]) == {"p50_ms_1", "p99_ms_1", "throughput"}


@pytest.mark.integration
@pytest.mark.slow
def test_table_reprints_the_json_without_measuring(quick_bench, tmp_path):
    report, _, _ = quick_bench
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report))
    before = path.read_text()
    result = subprocess.run([sys.executable, "bench/run_all.py", "--table", "--markdown", "--json", str(path)],
                            cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 1. overhead: pipeline cold / bare script |" in result.stdout
    assert "| write_model_card |" in result.stdout
    assert "(load average" not in result.stdout  # nothing was measured
    assert path.read_text() == before

    missing = subprocess.run([sys.executable, "bench/run_all.py", "--table", "--json", str(tmp_path / "none.json")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "run the benchmarks first" in missing.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_model_building_in_process_reports_each_part_per_size(tmp_path):
    """`bench/scale.py --in-process`: select_model alone per size, each family's trials and final fit, and how each
    part grows."""
    out = tmp_path / "parts.json"
    result = subprocess.run(
        [sys.executable, "bench/scale.py", "--in-process", "--sizes", "2000", "4000", "--config",
         "bench/configs/quick.yaml", "--json", str(out)],
        cwd=ROOT, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    small, large = json.loads(out.read_text())["model_building"]
    assert (small["rows"], large["rows"]) == (2000, 4000)
    assert 1500 < small["training_rows"] < 2000 and 1.9 < large["training_rows"] / small["training_rows"] < 2.1
    for figure in (small, large):
        families = figure["families"]
        assert set(families) == {"xgboost", "logistic_regression"} and figure["soft_voting_cv_seconds"] >= 0
        for name in ("xgboost", "logistic_regression"):
            (trial,) = families[name]["trials"]  # n_trials: 1
            assert 0 < trial <= families[name]["cv_seconds"] and families[name]["fit_seconds"] > 0
        searched = sum(family["cv_seconds"] for family in families.values()) + figure["soft_voting_cv_seconds"]
        assert figure["final_fits_seconds"] == pytest.approx(figure["seconds"] - searched)
        fits = [families[name]["fit_seconds"] for name in ("xgboost", "logistic_regression")]
        assert figure["final_fits_seconds"] > max(fits)  # the final fits run side by side in the last part
    assert "from 2,000 to 4,000 rows" in result.stdout and "xgboost trials:" in result.stdout
