"""The dashboard experience, in a real browser: `python run.py ui start` starts the local ZenML server and the
MLflow UI on loopback, selenium drives Debian's chromium through them, `ui stop` stops both."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.request

import pytest

from tests.browser import artifact_visualization_text, chromium_driver, mlflow_alias_row_text
from tests.conftest import ROOT
from tests.ports import free_port

pytestmark = pytest.mark.browser
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def dashboard(trained_run, workspace, zenml_client):
    """Both UIs up for this module; stopped (and the CLI back on the local store) afterwards.

    `zenml_client` is bound to the local SQLite store first: created while `zenml login --local` holds the config,
    it would talk to this server and hang once it stops.
    """
    zenml_client.zen_store  # noqa: B018  (connects now)
    zenml_port, mlflow_port = free_port(), free_port()
    result = workspace.run("ui", "start", "--ports", str(zenml_port), str(mlflow_port))
    urls = {"zenml": f"http://127.0.0.1:{zenml_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "stdout": result.stdout}
    try:
        yield urls
    finally:
        workspace.run("ui", "stop", check=False)


@pytest.fixture(scope="module")
def run(trained_run, zenml_client):
    return zenml_client.get_pipeline_run(trained_run.summary["run_id"])


@pytest.fixture(scope="module")
def driver():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_driver() as chromium:
        yield chromium


def test_dashboard_prints_both_urls_and_skips_onboarding(dashboard):
    assert dashboard["zenml"] in dashboard["stdout"] and dashboard["mlflow"] in dashboard["stdout"]
    assert _healthy(f"{dashboard['zenml']}/health") and _healthy(f"{dashboard['mlflow']}/health")
    user = _get_json(f"{dashboard['zenml']}/api/v1/current-user")
    assert user["metadata"]["user_metadata"]["finished_onboarding_survey"] is True


def test_data_profile_visualization_shows_column_statistics(dashboard, driver, trained_run):
    text = artifact_visualization_text(driver, dashboard["zenml"], trained_run.summary["run_id"], "data_profile",
                                       SCREENSHOTS / "data_profile.png")
    assert "Cholesterol" in text and "HeartDisease" in text


def test_lime_visualization_shows_a_patients_feature_weights(dashboard, driver, trained_run, run):
    explanations = run.steps["explain_model"].outputs["lime_explanations"][0].load()
    patient = explanations.patients[0]  # the card the page shows unfolded
    text = artifact_visualization_text(driver, dashboard["zenml"], trained_run.summary["run_id"], "lime_explanations",
                                       SCREENSHOTS / "lime_explanations.png", focus="//details[@open]")
    assert f"patient {patient.patient}: P(HeartDisease) = {patient.probability:.3f}" in text
    for contribution in patient.contributions:  # the condition (feature and value) and its signed weight
        weight = re.escape(f"{contribution.weight:+.3f}")
        assert re.search(rf"{re.escape(contribution.condition)}\s+{weight}\n", text), \
            (contribution, text[:3000])


def test_model_card_visualization_shows_subgroups_and_the_promotion_decision(dashboard, driver, trained_run, run):
    card = run.steps["write_model_card"].outputs["model_card"][0].load()
    subgroup_table = "(//h2[starts-with(normalize-space(),'Subgroups')]/following-sibling::table[1]//tbody/tr)[last()]"
    text = artifact_visualization_text(driver, dashboard["zenml"], trained_run.summary["run_id"], "model_card",
                                       SCREENSHOTS / "model_card.png", focus=subgroup_table)
    assert f"Model card: {card.provenance.registered_model} version {card.provenance.version}" in text
    for group in card.subgroups:  # attribute, group, patients, positives, ROC-AUC
        auc = f"{group.roc_auc.value:.3f} " if group.roc_auc else ""
        assert f"{group.attribute} {group.group} {group.rows} {group.positives} {auc}" in text, group
    decision = card.promotion.decision.replace("_", " ")
    assert f"Promotion: {decision} (production is version {card.promotion.production_version})" in text
    assert f"decision {decision}\nreason {card.promotion.reason}" in text


def test_shap_visualization_shows_a_patients_values_and_the_agreement_with_lime(dashboard, driver, trained_run, run):
    shap = run.steps["explain_with_shap"].outputs["shap_explanations"][0].load()
    patient = shap.patients[0]  # the card the page shows unfolded
    text = artifact_visualization_text(driver, dashboard["zenml"], trained_run.summary["run_id"], "shap_explanations",
                                       SCREENSHOTS / "shap_explanations.png", focus="//details[@open]")
    assert f"patient {patient.patient}: P(HeartDisease) = {patient.probability:.3f}" in text
    for feature, value in patient.values.items():  # each raw feature and its signed value
        assert re.search(rf"\n{re.escape(feature)}\s+{re.escape(f'{value:+.3f}')}\n", text), (feature, text[:3000])
    agreement = shap.agreement
    assert f"rank correlation of global importances (Spearman) {agreement.global_rank_correlation:.3f}" in text
    assert f"top-3 features in common per patient (mean share) {agreement.top_overlap:.3f}" in text


def test_model_card_shows_the_decision_curve_calibration_and_fairness(dashboard, driver, trained_run, run):
    card = run.steps["write_model_card"].outputs["model_card"][0].load()
    curve = "//h2[starts-with(normalize-space(),'Decision curve')]/following-sibling::div[@class='figure'][1]"
    text = artifact_visualization_text(driver, dashboard["zenml"], trained_run.summary["run_id"], "model_card",
                                       SCREENSHOTS / "model_card_decision_curve.png", focus=curve)
    registered = next(p for p in card.decision_curve if p.registered)
    assert f"There the model's net benefit is {registered.model:.3f}, treat-all's {registered.treat_all:.3f}" in text
    assert "threshold probability" in text and "net benefit" in text and "treat all" in text  # the SVG's labels
    assert f"calibration slope / intercept {card.calibration.slope:.2f} / {card.calibration.intercept:+.2f}" in text
    for check in card.fairness:
        shown = "none" if check.equalized_odds_difference is None else f"{check.equalized_odds_difference:.3f}"
        assert f"{check.attribute} {', '.join(check.groups) or 'none'} {shown}" in text, check


# Every artifact a user would open, and what its visualizations are.
VISUALIZED = {
    ("data_ingestion", "data_profile"): ["html"],
    ("model_building", "model_comparison"): ["html"],
    ("model_evaluation", "model_comparison_report"): ["html"],
    ("model_evaluation", "evaluation_report"): ["html"],
    ("model_evaluation", "confusion_matrix"): ["image"],
    ("model_evaluation", "roc_curve"): ["image"],
    ("model_evaluation", "pr_curve"): ["image"],
    ("model_evaluation", "calibration_curve"): ["image"],
    ("explain_model", "lime_explanations"): ["html", "image"],
    ("explain_with_shap", "shap_explanations"): ["html", "image"],
    ("write_model_card", "model_card"): ["html"],
}


def test_every_artifact_a_user_opens_renders_in_the_script_less_iframe(dashboard, run):
    """What the dashboard fetches for its preview (REST, as the browser would), checked for each visualization."""
    for (step, name), kinds in VISUALIZED.items():
        artifact = run.steps[step].outputs[name][0]
        assert len(artifact.visualizations) == len(kinds), name
        for index, kind in enumerate(kinds):
            shown = _get_json(f"{dashboard['zenml']}/api/v1/artifact_versions/{artifact.id}/visualize?index={index}")
            assert shown["type"] == kind, (name, index, shown["type"])
            if kind == "html":
                page = shown["value"].lower()
                assert "<script" not in page and "javascript:" not in page and " onload=" not in page, name
                assert "<table>" in page, name
            else:
                assert base64.b64decode(shown["value"])[:8] == b"\x89PNG\r\n\x1a\n", name


def test_mlflow_ui_shows_the_production_alias(dashboard, driver, trained_run):
    model = trained_run.summary["registered_model"]
    production = trained_run.summary["promotion"]["production_version"]
    row = mlflow_alias_row_text(driver, dashboard["mlflow"], model["name"], "production",
                                SCREENSHOTS / "mlflow_model.png")
    assert f"Version {production}" in row and "production" in row


def test_dashboard_stop_leaves_the_cli_working_locally(dashboard, workspace):
    result = workspace.run("ui", "stop")
    assert "ZenML server" in result.stdout and "MLflow UI" in result.stdout
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_healthy(f"{dashboard['zenml']}/health")
                                           or _healthy(f"{dashboard['mlflow']}/health")):
        time.sleep(0.5)
    assert not _healthy(f"{dashboard['zenml']}/health") and not _healthy(f"{dashboard['mlflow']}/health")
    started = time.monotonic()
    listing = subprocess.run([str(ROOT / ".venv" / "bin" / "zenml"), "stack", "list"], cwd=workspace.project,
                             env=workspace.env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and time.monotonic() - started < 30  # no retries against a dead server
    assert "local" in listing.stdout
