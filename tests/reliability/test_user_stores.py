"""The ZenML and MLflow stores a developer already has are never changed by the tests: every run works in a
temporary ZENML_CONFIG_PATH and tracking location inside a temporary copy of the project."""

from __future__ import annotations

import os

import pytest

from tests.reliability.user_stores import changes, snapshot, user_store_locations


@pytest.mark.integration
@pytest.mark.slow
def test_this_sessions_runs_leave_the_user_stores_untouched(user_stores, interrupted_runs, concurrent_runs):
    assert changes(user_stores) == {}
    # The runs did write: to their own stores.
    for workspace in (interrupted_runs.workspace, concurrent_runs.workspace):
        assert (workspace.zenml_config / "local_stores" / "default_zen_store" / "zenml.db").is_file()
        assert (workspace.zenml_config / "local_stores" / "mlflow" / "mlflow.db").is_file()
        assert (workspace.project / ".zen").is_dir()


def test_the_check_sees_a_store_created_or_changed(tmp_path):
    """The comparison above can fail: stores that appear, change or vanish are reported, missing ones too."""
    env = {"ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    locations = user_store_locations(env)
    assert locations["ZenML config"] == tmp_path / "zenml"
    assert locations["MLFLOW_TRACKING_URI"] == tmp_path / "mlflow.db"
    before = snapshot(env)
    assert before["ZenML config"][1] is None and before["MLFLOW_TRACKING_URI"][1] is None
    (tmp_path / "zenml").mkdir()
    (tmp_path / "zenml" / "config.yaml").write_text("active_stack_id: x\n")
    assert set(changes(before)) == {"ZenML config"}
    existing = snapshot(env)
    (tmp_path / "mlflow.db").write_bytes(b"sqlite")
    config = tmp_path / "zenml" / "config.yaml"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 1_000_000))
    found = changes(existing)
    assert found["MLFLOW_TRACKING_URI"].endswith("was created")
    assert "config.yaml" in found["ZenML config"]


def test_default_locations_without_any_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    locations = user_store_locations({})
    assert locations["ZenML config"] == tmp_path / "xdg" / "zenml"  # click's app dir, as ZenML uses it
    assert "MLFLOW_TRACKING_URI" not in locations
    assert any(name.endswith("/mlruns") for name in locations) and any(name.endswith("/mlflow.db")
                                                                       for name in locations)
