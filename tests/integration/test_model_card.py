"""The model card of the shared real run: its content against the run's own artifacts, its link to the ZenML model
version, and the same card on the MLflow model version."""

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def run(trained_run, zenml_client):
    return zenml_client.get_pipeline_run(trained_run.summary["run_id"])


def output(run, step, name):
    return run.steps[step].outputs[name][0].load()


@pytest.fixture(scope="module")
def card(run):
    return output(run, "write_model_card", "model_card")


def test_card_records_provenance_metrics_threshold_and_promotion(card, run, trained_run, workspace):
    from heartml.core.versioning import source_commit

    summary = trained_run.summary
    source = card.provenance
    data = output(run, "data_ingestion", "data_version")
    assert (source.registered_model, source.version) == (summary["registered_model"]["name"],
                                                          summary["registered_model"]["version"])
    assert source.pipeline_run_id == summary["run_id"] and source.data == data
    # What run.py passed to register_model (the test workspace is a copy without .git: "unknown").
    assert source.git_commit == (source_commit(workspace.project) or "unknown")
    assert source.training_date.startswith(run.start_time.strftime("%Y-%m-%dT%H:%M"))
    report = output(run, "model_evaluation", "evaluation_report")
    assert card.metrics == report.metrics and card.threshold.operating_points == report.operating_points
    assert card.metrics["roc_auc"].value == pytest.approx(summary["test_metrics"]["roc_auc"])
    assert card.threshold.threshold == report.decision_threshold == 0.5  # the rule's default: fixed at 0.5
    default = report.point("registered")
    assert (card.threshold.test_sensitivity, card.threshold.test_specificity) == pytest.approx(
        (default.test_sensitivity, default.test_specificity))
    assert card.promotion == output(run, "promote_model", "promotion_decision")
    assert card.promotion.decision == summary["promotion"]["decision"]
    lime = output(run, "explain_model", "lime_explanations")
    assert card.global_importance == lime.global_importance[:10] and card.explained_patients == len(lime.patients)
    assert card.calibration.brier == report.metrics["brier"]
    assert sum(b.rows for b in card.calibration.bins) == report.test_rows


def test_card_states_the_configured_intended_use(card):
    model = yaml.safe_load((ROOT / "tests" / "configs" / "training-fast.yaml").read_text())["model"]
    assert card.intended_use.use_cases == model["use_cases"]
    assert card.intended_use.limitations == model["limitations"]


def test_subgroups_by_sex_and_age_band_count_the_test_split(card, run):
    test = output(run, "data_preprocessing", "test_set")
    sex = {g.group: g for g in card.subgroups if g.attribute == "sex"}
    age = {g.group: g for g in card.subgroups if g.attribute == "age"}
    assert {k: v.rows for k, v in sex.items()} == test["Sex"].value_counts().to_dict()
    assert {k: v.positives for k, v in sex.items()} == test.groupby("Sex")["HeartDisease"].sum().to_dict()
    assert list(age) == ["under 50", "50-60", "60+"]
    assert [age[k].rows for k in age] == [(test["Age"] < 50).sum(), ((test["Age"] >= 50) & (test["Age"] < 60)).sum(),
                                          (test["Age"] >= 60).sum()]
    for group in card.subgroups:
        assert group.roc_auc is not None and group.roc_auc.low <= group.roc_auc.value <= group.roc_auc.high
        assert 0 <= group.sensitivity <= 1 and 0 <= group.specificity <= 1


def test_card_is_linked_to_the_zenml_model_version(run, trained_run):
    version = run.model_version
    assert version.get_artifact("model_card").id == run.steps["write_model_card"].outputs["model_card"][0].id
    assert version.run_metadata["model_card"]["mlflow_artifact"] == \
        trained_run.summary["model_card"]["mlflow_artifact"]


def test_the_same_card_is_attached_to_the_mlflow_model_version(card, trained_run, tmp_path):
    from mlflow.tracking import MlflowClient

    summary = trained_run.summary
    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    model = summary["registered_model"]
    version = client.get_model_version(model["name"], model["version"])
    card_uri = summary["model_card"]["mlflow_artifact"]
    assert card_uri == f"runs:/{version.run_id}/model_card/model_card.html"
    assert version.tags["model_card"] == card_uri
    assert card_uri in version.description and card.promotion.decision.replace("_", " ") in version.description
    folder = Path(client.download_artifacts(version.run_id, "model_card", str(tmp_path)))
    assert json.loads((folder / "model_card.json").read_text()) == json.loads(card.model_dump_json())
    page = (folder / "model_card.html").read_text()
    assert "<script" not in page.lower() and f"version {model['version']}" in page
