"""Stages 1-3 inside real pipeline runs: artifacts, metadata, the dashboard profile, data versions, other sources
and the second shipped dataset."""

import json
import re
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser

from tests.conftest import config_with_model_name, tracking


def _run(zenml_client, run_id):
    return zenml_client.get_pipeline_run(run_id)


def test_profile_artifact_loads_and_shows_static_html(trained_run, zenml_client):
    from heartml.reports.profile import DataProfile

    ingestion = _run(zenml_client, trained_run.summary["run_id"]).steps["data_ingestion"]
    artifact = ingestion.outputs["data_profile"][0]
    profile = artifact.load()
    assert isinstance(profile, DataProfile)
    assert profile.rows == 918 and profile.target_counts == {"0": 410, "1": 508}
    assert {c.name: c.markers for c in profile.column_profiles}["Cholesterol"] == 172
    assert artifact.run_metadata["missing_or_not_measured"] == 173
    from zenml.artifacts.utils import load_artifact_visualization

    (index,) = [i for i, v in enumerate(artifact.visualizations) if v.type.value == "html"]
    page = load_artifact_visualization(artifact, index).value  # what the dashboard is served

    class Tags(HTMLParser):
        seen = set()

        def handle_starttag(self, tag, attrs):
            self.seen.add(tag)

    parser = Tags()
    parser.feed(page)
    assert "table" in parser.seen and "script" not in parser.seen
    assert "Data profile: heart" in page and "Target balance: HeartDisease" in page


def test_raw_data_is_versioned_tagged_and_described(trained_run, zenml_client):
    from heartml.core.sources import read_source
    from heartml.core.versioning import DataVersion, frame_fingerprint

    ingestion = _run(zenml_client, trained_run.summary["run_id"]).steps["data_ingestion"]
    raw = ingestion.outputs["raw_dataset"][0]
    expected_hash = frame_fingerprint(read_source("bundled://heart"))
    assert {k: raw.run_metadata[k] for k in ("data_hash", "source", "rows", "columns", "dataset")} == {
        "data_hash": expected_hash, "source": "bundled://heart", "rows": 918, "columns": 12, "dataset": "heart"}
    assert {t.name for t in raw.tags} >= {f"data:{expected_hash[:12]}", "dataset:heart"}
    assert ingestion.outputs["data_version"][0].load() == DataVersion(
        data_hash=expected_hash, source="bundled://heart", dataset="heart", rows=918, columns=12)


def test_preprocessing_and_feature_metadata(trained_run, zenml_client):
    run = _run(zenml_client, trained_run.summary["run_id"])
    preprocessing = run.steps["data_preprocessing"]
    cleaning = preprocessing.run_metadata["cleaning"]
    assert cleaning["domain_missing"] == {"RestingBP": 1, "Cholesterol": 172}
    assert cleaning["duplicates_dropped"] == 0 and cleaning["rows_out"] == 918
    assert cleaning["dtype_conversions"]["Cholesterol"] == "int64 -> float64"
    assert set(preprocessing.outputs) == {"train_set", "test_set", "preprocessing"}  # no validation split
    sizes = {name: preprocessing.outputs[name][0].run_metadata["rows"] for name in ("train_set", "test_set")}
    assert sizes == {"train_set": 734, "test_set": 184}
    assert preprocessing.outputs["test_set"][0].run_metadata["cleaning"] == cleaning
    # The data stages hand on transforms unfitted; they are fitted once, where the model is built.
    spec = preprocessing.outputs["preprocessing"][0]
    assert spec.run_metadata["fitted"] is False and not hasattr(spec.load(), "transformers_")
    features = run.steps["feature_engineering"].outputs["feature_pipeline"][0]
    assert features.run_metadata["fitted"] is False and not hasattr(features.load(), "n_features_in_")
    assert features.run_metadata["steps"] == ["age_bands", "group_relative", "preprocess"]
    fitted = run.steps["model_building"].outputs["model"][0].run_metadata
    outliers = fitted["outliers"]
    assert outliers["method"] == "iqr" and outliers["counts"]["train_set"]["Cholesterol"] > 0
    assert outliers["total"]["train_set"] == sum(outliers["counts"]["train_set"].values())
    assert fitted["features"]["steps"] == ["age_bands", "group_relative", "preprocess"]
    assert "Cholesterol_vs_age_band_Sex" in fitted["features"]["feature_names"]
    train = preprocessing.outputs["train_set"][0].load()
    assert train["HeartDisease"].isin([0, 1]).all() and train["Cholesterol"].isna().sum() > 0


def test_the_registered_model_carries_the_fitted_feature_transforms(trained_run, zenml_client):
    import mlflow

    run = _run(zenml_client, trained_run.summary["run_id"])
    test_set = run.steps["data_preprocessing"].outputs["test_set"][0].load()
    with tracking(trained_run.summary["mlflow_tracking_uri"]):
        registered = mlflow.sklearn.load_model(trained_run.summary["registered_model"]["uri"])
    steps = registered.named_steps["features"].named_steps
    assert list(steps) == ["age_bands", "group_relative", "preprocess"]
    artifact_model = run.steps["model_building"].outputs["model"][0].load()
    X = test_set.drop(columns=["HeartDisease"])
    assert (registered.predict_proba(X) == artifact_model.predict_proba(X)).all()


def test_same_rows_from_sqlite_are_the_same_data_version_and_hit_the_cache(trained_run, workspace, zenml_client):
    """A table in a real SQLite file with the bundled rows: same data hash, and preprocessing is a cache hit."""
    from heartml.core.sources import read_source

    database = workspace.project / "out" / "clinic.db"
    database.parent.mkdir(exist_ok=True)
    with sqlite3.connect(database) as connection:
        read_source("bundled://heart").to_sql("heart", connection, index=False, if_exists="replace")
    uri = f"sqlite:///{database}#table=heart"
    summary_path = workspace.project / "out" / "sqlite.json"
    result = workspace.run("--config", config_with_model_name(workspace, "heart_sqlite_check"),
                           "--source", uri, "--summary-json", str(summary_path))
    summary = json.loads(summary_path.read_text())
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert "Using cached version of step `data_preprocessing`" in output
    versions = [_run(zenml_client, s["run_id"]).steps["data_ingestion"].outputs["data_version"][0].load()
                for s in (trained_run.summary, summary)]
    assert versions[0].data_hash == versions[1].data_hash
    assert (versions[0].source, versions[1].source) == ("bundled://heart", uri)
    assert summary["test_metrics"] == trained_run.summary["test_metrics"]


def test_a_file_changed_behind_the_same_path_is_read_again(trained_run, workspace, zenml_client):
    """Ingestion is cached on the content run.py's preflight read, never on the path alone: after one value of the
    file changed, the same command reads, versions and trains on the new data."""
    from heartml.core.sources import read_source
    from heartml.core.versioning import frame_fingerprint

    path = workspace.project / "out" / "clinic.csv"
    path.parent.mkdir(exist_ok=True)
    frame = read_source("bundled://heart")
    config = config_with_model_name(workspace, "heart_changed_file_check", base="tests/configs/training-tiny.yaml",
                                    source=str(path))

    def ingestion_of_a_run(name):
        summary_path = workspace.project / "out" / f"{name}.json"
        result = workspace.run("--config", config, "--summary-json", str(summary_path))
        output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        run = _run(zenml_client, json.loads(summary_path.read_text())["run_id"])
        return output, run.steps["data_ingestion"].outputs["data_version"][0].load()

    frame.to_csv(path, index=False)
    output, before = ingestion_of_a_run("file-before")
    assert "Step `data_ingestion` has finished" in output
    changed = frame.copy()
    changed.loc[0, "Cholesterol"] += 1
    changed.to_csv(path, index=False)
    output, after = ingestion_of_a_run("file-after")
    assert "Step `data_ingestion` has finished" in output
    assert "Using cached version of step `data_preprocessing`" not in output
    assert before.data_hash == frame_fingerprint(frame) != after.data_hash == frame_fingerprint(changed)
    assert before.source == after.source == str(path)


def test_heart_failure_records_dataset_end_to_end(trained_run, workspace, zenml_client):
    """The second shipped dataset through the default config, gate on: its description alone carries what it
    needs (acceptance limits, untuned regularized candidates, a sensitivity-based threshold)."""
    summary_path = workspace.project / "out" / "records.json"
    config = config_with_model_name(workspace, "heart_failure_records_check", base="configs/training.yaml")
    workspace.run("--config", config, "--dataset", "configs/datasets/heart_failure_records.yaml",
                  "--summary-json", str(summary_path))
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    assert summary["registered_model"]["name"] == "heart_failure_records_check"
    run = _run(zenml_client, summary["run_id"])
    version = run.steps["data_ingestion"].outputs["data_version"][0].load()
    assert (version.dataset, version.source, version.rows, version.columns) == (
        "heart_failure_records", "bundled://heart_failure_records", 299, 13)
    model = run.steps["model_building"].outputs["model"][0]
    assert "time" not in model.run_metadata["features"]["feature_names"]
    assert (model.run_metadata["search_method"], model.run_metadata["families"]) == (
        "none", ["random_forest", "logistic_regression"])  # the dataset's step_parameters over the config's
    assert run.steps["data_preprocessing"].run_metadata["cleaning"]["excluded_columns"] == ["time"]
    report = run.steps["model_evaluation"].outputs["evaluation_report"][0].load()
    assert report.fitting.verdict == "ok" and report.fitting.limits.min_score == 0.70
    assert report.threshold_rule == "highest threshold with out-of-fold sensitivity >= 0.7"
    assert report.point("registered").cv_sensitivity >= 0.7
    assert summary["test_metrics"]["roc_auc"] > 0.7


def test_the_ingestion_step_validates_where_it_runs(trained_run, workspace, tmp_path):
    """Remote orchestrators skip run.py's preflight: the step itself refuses bad data and nothing is registered."""
    from mlflow.tracking import MlflowClient

    from heartml.core.sources import read_source

    bad = read_source("bundled://heart")
    bad.loc[[3, 4], "Age"] = [-4, 400]
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    config = config_with_model_name(workspace, "heart_step_validation_check", source=str(path))
    script = ("from run import ensure_repository; ensure_repository()\n"
              "from pipelines.training import training_pipeline\n"
              f"training_pipeline.with_options(config_path={config!r})()\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=workspace.project, env=workspace.env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    # Rich wraps long lines: compare with whitespace folded.
    output = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).split())
    assert "Step data_ingestion failed" in output and "DataValidationError" in output
    assert f"{path}: column 'Age': rule 'range [1, 120]' failed for 2 rows (e.g. -4, 400)" in output
    client = MlflowClient(tracking_uri=trained_run.summary["mlflow_tracking_uri"])
    assert client.search_model_versions("name = 'heart_step_validation_check'") == []
