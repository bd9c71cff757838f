"""The whole training pipeline on a real local stack (temporary ZenML store, SQLite MLflow)."""

import json
import math
from pathlib import Path

import pytest


def test_run_completes_and_prints_where_to_look(trained_run):
    summary = trained_run.summary
    assert summary["status"] == "completed"
    assert summary["stack"] == "local"
    assert f"Run {summary['run_name']} on stack 'local': completed" in trained_run.stdout
    assert "python run.py ui start" in trained_run.stdout
    assert f"/projects/default/runs/{summary['run_id']}" in trained_run.stdout


STEPS = ("data_ingestion", "data_preprocessing", "feature_engineering", "model_building", "explain_model",
         "model_evaluation", "quality_gate", "register_model", "promote_model", "write_model_card")


def test_default_output_fits_on_one_screen(trained_run):
    """Step progress, the summary, warnings that matter; no ZenML/MLflow chatter, no progress bars off a terminal."""
    output = trained_run.stdout + trained_run.stderr
    assert "\x1b[" not in output  # piped (a file, a CI log): no colour codes, ZenML's step lines included
    lines = output.splitlines()  # splits at carriage returns too, so a redrawn bar counts every redraw
    screen_rows = sum(max(1, math.ceil(len(line) / 120)) for line in lines)
    assert screen_rows <= 40, output
    for step in STEPS:
        assert sum(f"Step `{step}` has finished in" in line for line in lines) == 1, step
    for chatter in ("has started", "Using stack", "ZenML Pro", "Failed to disable MLflow autologging",
                    "cloudpickle", "Created version", "Downloading artifacts", "it/s]", "Pipeline run has finished"):
        assert chatter not in output, chatter
    assert f"Model card:       {trained_run.summary['model_card']['mlflow_artifact']} " in trained_run.stdout


def test_stored_step_logs_keep_what_the_terminal_leaves_out(trained_run, zenml_client):
    """Quiet mode filters the terminal only: the dashboard's step logs still hold ZenML's and our INFO lines."""
    run = zenml_client.get_pipeline_run(trained_run.summary["run_id"])
    version = trained_run.summary["registered_model"]["version"]

    def stored(step: str) -> str:
        return "\n".join(json.loads(line)["message"] for logs in run.steps[step].log_collection
                         for line in Path(logs.uri).read_text().splitlines())

    assert "Step `model_building` has started." in stored("model_building")
    assert "tune xgboost: 3 trials (optuna; " in stored("model_building")
    assert f"Created version '{version}' of model" in stored("register_model")
    assert f"Promotion of heart_failure_classifier version {version}: promoted" in stored("promote_model")
    test_rows = len(run.steps["data_preprocessing"].outputs["test_set"][0].load())
    assert f"LIME: {test_rows} test patients" in stored("explain_model")
    assert "it/s]" not in stored("model_building") + stored("register_model")  # no progress bar redraws


def test_every_output_artifact_loads_with_its_declared_type(trained_run, zenml_client):
    from zenml.utils import source_utils

    run = zenml_client.get_pipeline_run(trained_run.summary["run_id"])
    expected_steps = {"data_ingestion", "data_preprocessing", "feature_engineering", "model_building",
                      "model_evaluation", "quality_gate", "explain_model", "explain_with_shap", "register_model",
                      "promote_model", "write_model_card"}
    assert set(run.steps) == expected_steps
    loaded = {}
    for step_name, step in run.steps.items():
        assert step.status.value == "completed", step_name
        for output_name, versions in step.outputs.items():
            declared = source_utils.load(versions[0].data_type)
            value = versions[0].load()
            assert isinstance(value, declared), (step_name, output_name, type(value), declared)
            loaded[output_name] = value
    assert {"raw_dataset", "data_version", "train_set", "test_set", "preprocessing",
            "feature_pipeline", "model", "model_comparison", "candidate_models", "cv_predictions", "test_metrics",
            "evaluation_report", "model_comparison_report", "confusion_matrix", "roc_curve", "pr_curve",
            "calibration_curve", "lime_explanations", "shap_explanations", "registered_model", "mlflow_model",
            "promotion_decision", "model_card"} <= set(loaded)
    assert len(loaded["raw_dataset"]) == 918
    # The saved model takes raw patient records.
    proba = loaded["model"].predict_proba(loaded["test_set"].drop(columns=["HeartDisease"]))[:, 1]
    assert len(proba) == len(loaded["test_set"])


def test_data_hash_is_artifact_metadata(trained_run, zenml_client):
    run = zenml_client.get_pipeline_run(trained_run.summary["run_id"])
    raw = run.steps["data_ingestion"].outputs["raw_dataset"][0]
    from heartml.core.sources import read_source
    from heartml.core.versioning import frame_fingerprint

    assert raw.run_metadata["data_hash"] == frame_fingerprint(read_source("bundled://heart"))
    assert raw.run_metadata["rows"] == 918


def test_metrics_are_in_the_mlflow_tracking_store(trained_run):
    from mlflow.tracking import MlflowClient

    summary = trained_run.summary
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.mlflow.runName = '{summary['run_name']}'",
    )
    assert len(runs) == 1
    logged = runs[0].data.metrics
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert logged[f"test_{name}"] == pytest.approx(summary["test_metrics"][name])


def test_registry_holds_the_new_version_with_roc_auc_tag(trained_run):
    from mlflow.tracking import MlflowClient

    summary = trained_run.summary
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    model = summary["registered_model"]
    version = client.get_model_version(model["name"], model["version"])
    roc_auc = float(version.tags["metric.roc_auc"])
    assert roc_auc >= 0.88
    assert roc_auc == pytest.approx(summary["test_metrics"]["roc_auc"], abs=1e-6)
    assert len(version.tags["data_hash"]) == 64
    assert version.tags["zenml_pipeline_run_id"] == summary["run_id"]


def test_second_run_reuses_the_stack_and_the_cache(trained_run, workspace, tmp_path):
    """Stack registration is idempotent and unchanged data hits the cache, ingestion's too; registration still
    runs."""
    summary_path = tmp_path / "second.json"
    result = workspace.run("--stack", "local", "--config", "tests/configs/training-fast.yaml",
                           "--summary-json", str(summary_path))
    output = result.stdout + result.stderr
    assert "registered stack" not in output and "registered experiment_tracker" not in output
    for step in ("data_ingestion", "data_preprocessing", "feature_engineering", "model_building", "model_evaluation",
                 "explain_model"):
        assert f"Using cached version of step `{step}`" in output, step
    second = json.loads(summary_path.read_text())
    assert int(second["registered_model"]["version"]) > int(trained_run.summary["registered_model"]["version"])
    assert second["test_metrics"] == trained_run.summary["test_metrics"]

