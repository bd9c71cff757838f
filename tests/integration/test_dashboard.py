"""The dashboard experience, in a real browser: `python run.py --dashboard` starts the local ZenML server and the
MLflow UI on loopback, selenium drives Debian's chromium through them, `--dashboard-stop` stops both."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from tests.browser import artifact_visualization_text, chromium_driver, mlflow_alias_row_text
from tests.conftest import ROOT
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]
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
def dashboard(trained_run, workspace):
    """Both UIs up for this module; stopped (and the CLI back on the local store) afterwards."""
    zenml_port, mlflow_port = free_port(), free_port()
    result = workspace.run("--dashboard", "--dashboard-ports", str(zenml_port), str(mlflow_port))
    urls = {"zenml": f"http://127.0.0.1:{zenml_port}", "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "stdout": result.stdout}
    try:
        yield urls
    finally:
        workspace.run("--dashboard-stop", check=False)


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


def test_mlflow_ui_shows_the_production_alias(dashboard, driver, trained_run):
    model = trained_run.summary["registered_model"]
    production = trained_run.summary["promotion"]["production_version"]
    row = mlflow_alias_row_text(driver, dashboard["mlflow"], model["name"], "production",
                                SCREENSHOTS / "mlflow_model.png")
    assert f"Version {production}" in row and "production" in row


def test_dashboard_stop_leaves_the_cli_working_locally(dashboard, workspace):
    result = workspace.run("--dashboard-stop")
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
