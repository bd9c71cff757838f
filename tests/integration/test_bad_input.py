"""Bad data stops the run before training with a one-line error, a non-zero exit and nothing registered."""

import pytest

pytestmark = pytest.mark.integration


def test_out_of_range_file_fails_clearly_and_registers_nothing(trained_run, workspace, tmp_path):
    from heartml.sources import read_source
    from mlflow.tracking import MlflowClient

    bad = read_source("bundled://heart")
    bad.loc[[3, 4], "Age"] = [-4, 400]
    path = tmp_path / "bad_heart.csv"
    bad.to_csv(path, index=False)
    client = MlflowClient(tracking_uri=trained_run.summary["mlflow_tracking_uri"])
    name = trained_run.summary["registered_model"]["name"]
    before = len(client.search_model_versions(f"name = '{name}'"))

    result = workspace.run("--source", str(path), "--config", "tests/configs/training-fast.yaml", check=False)

    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error_lines == [f"error: {path}: column 'Age': rule 'in_range(1.0, 120.0)' failed for 2 rows (e.g. -4.0, 400.0)"]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(client.search_model_versions(f"name = '{name}'")) == before
