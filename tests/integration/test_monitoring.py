"""Drift monitoring in batch inference, on the shared trained run: scored records against the training reference
of the version that scored them (real ZenML run, real MLflow run, Evidently's tests)."""

import json

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tracking
from tests.serving import unseen_patients

MODEL = "heart_failure_classifier"


def patients(tmp_path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / f"{name}.csv"
    frame.drop(columns=["HeartDisease"]).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    from heartml.core.sources import read_source

    return read_source("bundled://heart")


def artifact_page(zenml_client, artifact) -> str:
    """The artifact's HTML visualization as stored in the artifact store."""
    store = zenml_client.active_stack.artifact_store
    with store.open(artifact.visualizations[0].uri, "r") as handle:
        return handle.read()


def predict(workspace, tmp_path, records: str, *extra: str, check: bool = True):
    summary = tmp_path / "summary.json"
    result = workspace.run("predict", "--input", records, "--output", str(tmp_path / "scored.csv"),
                           "--summary-json", str(summary), *extra, check=check)
    return result, (json.loads(summary.read_text()) if summary.exists() else None)


def test_new_patients_like_the_training_ones_do_not_trip_the_monitor(trained_run, workspace, tmp_path):
    from heartml.registry.model_versions import version_by_alias

    with tracking(trained_run.summary["mlflow_tracking_uri"]) as client:
        production = str(version_by_alias(client, MODEL, "production").version)
        unseen = unseen_patients(client, MODEL, production)  # the test split: new to the model
    path = tmp_path / "new-patients.csv"
    unseen.to_csv(path, index=False)
    result, summary = predict(workspace, tmp_path, str(path))
    assert summary["drift_detected"] is False and summary["retraining_recommended"] is False
    monitoring = summary["monitoring"]
    assert monitoring["drifted_columns"] == [] and monitoring["rows"] == len(unseen) > 150
    assert monitoring["verdict"].startswith("no drift in ")
    assert "Drift:            no drift in" in result.stdout


def test_a_cohort_without_cholesterol_measurements_trips_it(trained_run, workspace, zenml_client, heart, tmp_path):
    cohort = heart[heart["Cholesterol"] == 0]
    result, summary = predict(workspace, tmp_path, patients(tmp_path, "not-measured", cohort))
    assert summary["status"] == "completed"  # gate `warn` (configs/inference.yaml): the run completes
    assert summary["drift_detected"] is True and summary["retraining_recommended"] is True
    assert "Cholesterol not measured" in summary["monitoring"]["drifted_columns"]
    assert "Drift:            drift in" in result.stdout and "retraining recommended" in result.stdout
    # The report: a ZenML artifact with an HTML view, and HTML + JSON in the inference run's MLflow run.
    run = zenml_client.get_pipeline_run(summary["run_id"])
    artifact = run.steps["monitor_drift"].outputs["drift_report"][0]
    report = artifact.load()
    assert report.model_version == summary["model"]["version"] and report.current_rows == len(cohort)
    chol = next(test for test in report.tests if test.column == "Cholesterol not measured")
    assert chol.drifted and chol.current == f"not measured 100% (n={len(cohort)})"
    assert [v.type for v in artifact.visualizations] == ["html"]
    page = artifact_page(zenml_client, artifact)  # what the dashboard shows, in its script-free iframe
    assert "<script" not in page.lower() and "Cholesterol not measured" in page and report.verdict in page
    with tracking(summary["mlflow_tracking_uri"]) as client:
        client: MlflowClient
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  "tags.`drift.model_version` != ''", order_by=["start_time DESC"], max_results=1)
        paths = {a.path for a in client.list_artifacts(runs[0].info.run_id, "monitoring")}
        assert runs[0].data.metrics["drift_detected"] == 1.0
    assert paths == {"monitoring/drift.html", "monitoring/drift.json"}


def test_the_fail_gate_fails_the_run_in_one_line_after_writing(trained_run, workspace, heart, tmp_path):
    config = yaml.safe_load((workspace.project / "configs/inference.yaml").read_text())
    config["steps"]["monitor_drift"]["parameters"]["monitoring"]["gate"] = "fail"
    path = tmp_path / "inference-gate-fail.yaml"
    path.write_text(yaml.safe_dump(config))
    older = heart[heart["Age"] >= 60]
    result, _ = predict(workspace, tmp_path, patients(tmp_path, "older", older), "--config", str(path), check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: drift gate: drift in "), result.stderr[-3000:]
    assert "Age" in errors[0] and "Traceback" not in result.stderr
    assert len(pd.read_csv(tmp_path / "scored.csv")) == len(older)  # predictions were delivered first
