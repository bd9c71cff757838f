"""Model building, evaluation and LIME artifacts of the shared real run: dashboard visualizations, MLflow, gate."""

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import config_with_model_name

METRIC_KEYS = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "mcc", "brier"}


@pytest.fixture(scope="module")
def run(trained_run, zenml_client):
    return zenml_client.get_pipeline_run(trained_run.summary["run_id"])


def output(run, step, name):
    return run.steps[step].outputs[name][0]


def visualization_files(artifact):
    return {Path(v.uri).suffix: Path(v.uri) for v in artifact.visualizations}


def test_selection_metadata_and_flat_test_metrics(run, trained_run):
    comparison = output(run, "model_building", "model_comparison").load()
    selected = comparison.loc[comparison["selected"], "family"].item()
    assert selected == comparison.loc[comparison["cv_mean"].idxmax(), "family"]
    assert set(comparison["family"]) == {"xgboost", "logistic_regression", "soft_voting"}
    model = output(run, "model_building", "model")
    assert model.run_metadata["family"] == selected
    assert model.run_metadata["cv_roc_auc_mean"] == pytest.approx(comparison["cv_mean"].max())
    assert model.run_metadata["search_method"] == "optuna" and model.run_metadata["n_trials"] == 3
    assert list(model.load().named_steps) == ["features", "classifier"]

    metrics = trained_run.summary["test_metrics"]
    assert set(metrics) == METRIC_KEYS and all(isinstance(v, float) for v in metrics.values())
    report = output(run, "model_evaluation", "evaluation_report").load()
    assert report.model_name == selected
    assert {name: e.value for name, e in report.metrics.items()} == pytest.approx(metrics)
    assert all(e.low <= e.value <= e.high for e in report.metrics.values())
    assert [p.name for p in report.operating_points] == ["registered", "screening"]  # registered: fixed 0.5
    assert report.decision_threshold == 0.5 and report.threshold_rule == "fixed at 0.5"
    assert report.point("screening").cv_sensitivity >= 0.9
    assert report.fitting.verdict == "ok"
    assert output(run, "model_evaluation", "evaluation_report").run_metadata["verdict"] == "ok"
    evaluation = run.model_version.run_metadata["evaluation"]  # the ZenML model version shows it too
    assert evaluation["verdict"] == "ok" and evaluation["roc_auc"] == pytest.approx(metrics["roc_auc"])


def test_dashboard_visualizations_are_static_html_and_png(run):
    for step, name in (("model_building", "model_comparison"), ("model_evaluation", "model_comparison_report"),
                       ("model_evaluation", "evaluation_report"), ("explain_model", "lime_explanations"),
                       ("explain_with_shap", "shap_explanations")):
        page = visualization_files(output(run, step, name))[".html"].read_text()
        assert "<script" not in page.lower() and "<table>" in page, name
    for name in ("confusion_matrix", "roc_curve", "pr_curve", "calibration_curve"):
        image = visualization_files(output(run, "model_evaluation", name))[".PNG"]
        assert image.read_bytes()[:4] == b"\x89PNG", name
    for step, name in (("explain_model", "lime_explanations"), ("explain_with_shap", "shap_explanations")):
        assert visualization_files(output(run, step, name))[".png"].read_bytes()[:4] == b"\x89PNG", name
    report_page = visualization_files(output(run, "model_evaluation", "model_comparison_report"))[".html"].read_text()
    assert "test roc_auc" in report_page and "soft_voting" in report_page


def test_lime_explains_every_test_patient(run):
    explanations = output(run, "explain_model", "lime_explanations").load()
    test_set = output(run, "data_preprocessing", "test_set").load()
    model = output(run, "model_building", "model").load()
    assert [p.patient for p in explanations.patients] == list(range(len(test_set)))
    first = explanations.patients[0]
    expected = model.predict_proba(test_set.drop(columns=["HeartDisease"]).iloc[[0]])[0, 1]
    assert first.probability == pytest.approx(expected)
    assert first.label == int(test_set["HeartDisease"].iloc[0])
    raw_columns = set(test_set.columns) - {"HeartDisease"}
    assert {f.feature for f in explanations.global_importance} <= raw_columns | {f"{c} missing" for c in raw_columns}
    assert explanations.global_importance[0].mean_abs_weight >= explanations.global_importance[-1].mean_abs_weight


def test_mlflow_has_tuning_children_figures_and_explanations(trained_run):
    from mlflow.tracking import MlflowClient

    summary = trained_run.summary
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    parent = client.search_runs(experiments, filter_string=f"tags.mlflow.runName = '{summary['run_name']}'")[0]
    children = client.search_runs(experiments, filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == ["tune logistic_regression", "tune xgboost"]
    for child in children:
        history = client.get_metric_history(child.info.run_id, "trial_cv_roc_auc")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert child.data.metrics["cv_roc_auc_mean"] == pytest.approx(max(m.value for m in history))
    artifacts = {a.path for folder in ("evaluation", "explanations")
                 for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {"evaluation/roc_curve.png", "evaluation/pr_curve.png", "evaluation/calibration_curve.png",
            "evaluation/confusion_matrix.png", "evaluation/model_comparison.html", "evaluation/evaluation_report.json",
            "explanations/lime.html", "explanations/lime.png", "explanations/shap.html", "explanations/shap.png",
            "explanations/shap.json"} <= artifacts
    assert 0 < parent.data.metrics["shap_lime_top_overlap"] <= 1
    assert parent.data.metrics["test_roc_auc_ci_low"] < parent.data.metrics["test_roc_auc"]
    assert parent.data.tags["fitting_verdict"] == "ok"


def test_quality_gate_fails_the_run_and_registers_nothing(trained_run, workspace):
    from mlflow.tracking import MlflowClient

    # The limits travel with the data: a copy of the dataset description asking for an impossible floor.
    dataset = yaml.safe_load((workspace.project / "configs/datasets/heart.yaml").read_text())
    dataset["acceptance"] = {"min_score": 0.99}
    path = workspace.project / "out" / "gate.yaml"
    path.parent.mkdir(exist_ok=True)
    path.with_name("gate-dataset.yaml").write_text(yaml.safe_dump(dataset))
    config = yaml.safe_load((workspace.project / "tests/configs/training-fast.yaml").read_text())
    config["parameters"]["dataset_config"] = str(path.with_name("gate-dataset.yaml"))
    path.write_text(yaml.safe_dump(config))
    client = MlflowClient(tracking_uri=trained_run.summary["mlflow_tracking_uri"])
    name = trained_run.summary["registered_model"]["name"]
    versions_before = len(client.search_model_versions(f"name = '{name}'"))

    result = workspace.run("--config", str(path), "--summary-json", str(path.with_suffix(".json")), check=False)
    assert result.returncode == 3, result.stderr[-3000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and "quality gate: model '" in error_lines[0]
    assert "is underfitting" in error_lines[0] and "< 0.99" in error_lines[0]
    assert len(client.search_model_versions(f"name = '{name}'")) == versions_before
    assert not path.with_suffix(".json").exists()


def test_shap_explains_the_lime_patients_in_the_raw_features(run):
    shap = output(run, "explain_with_shap", "shap_explanations").load()
    lime = output(run, "explain_model", "lime_explanations").load()
    model = output(run, "model_building", "model").load()
    test_set = output(run, "data_preprocessing", "test_set").load()
    assert [p.patient for p in shap.patients] == [p.patient for p in lime.patients][:40]  # shap.max_patients
    assert shap.feature_names == [c for c in test_set.columns if c != "HeartDisease"]  # raw features, not encoded
    # The fast config's engineered features mix columns (values relative to age band and sex): permutation.
    assert shap.method == "permutation" and "combine raw columns" in shap.why
    proba = model.predict_proba(test_set.drop(columns=["HeartDisease"]))[:, 1]
    for patient in shap.patients:
        assert patient.probability == pytest.approx(proba[patient.patient])
        assert patient.base_value + sum(patient.values.values()) == pytest.approx(patient.output, abs=1e-6)
    assert shap.agreement.patients == 40
    assert -1 <= shap.agreement.global_rank_correlation <= 1 and 0 <= shap.agreement.top_overlap <= 1
    assert shap.lime_stability == lime.stability and lime.stability.patients == 20
    page = visualization_files(output(run, "explain_with_shap", "shap_explanations"))[".html"].read_text()
    assert "Agreement with LIME" in page and "rank correlation of global importances" in page


def test_a_lower_decision_threshold_is_the_one_everything_reports(trained_run, workspace, zenml_client):
    """decision_threshold: 0.3 in the run config: evaluation, the registered tag, the model card and the summary
    all use it, and recall on the same split is higher than at 0.5 (the model itself comes from the cache)."""
    from mlflow.tracking import MlflowClient

    path = Path(config_with_model_name(workspace, "threshold_check"))  # its own model: the shared one stays put
    config = yaml.safe_load(path.read_text())
    config["steps"]["model_evaluation"]["parameters"]["decision_threshold"] = 0.3
    path.write_text(yaml.safe_dump(config))
    summary_path = path.with_suffix(".json")
    workspace.run("--config", str(path), "--summary-json", str(summary_path))
    summary = json.loads(summary_path.read_text())
    low, default = summary["test_metrics"], trained_run.summary["test_metrics"]
    assert low["recall"] > default["recall"] and low["roc_auc"] == pytest.approx(default["roc_auc"])
    run = zenml_client.get_pipeline_run(summary["run_id"])
    assert output(run, "model_building", "model").id == output(
        zenml_client.get_pipeline_run(trained_run.summary["run_id"]), "model_building", "model").id  # cached
    report = output(run, "model_evaluation", "evaluation_report").load()
    assert report.decision_threshold == 0.3 and report.operating_points[0].threshold == 0.3
    assert report.metrics["recall"].value == pytest.approx(low["recall"])
    registered = summary["registered_model"]
    version = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"]).get_model_version(
        registered["name"], registered["version"])
    assert version.tags["decision_threshold"] == "0.3"
    card = output(run, "write_model_card", "model_card").load()
    assert card.threshold.threshold == 0.3 and any(p.registered and p.threshold == 0.3 for p in card.decision_curve)
