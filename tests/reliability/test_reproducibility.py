"""Same data, config and seed: the same test metrics and the same predictions, with and without the cache, in two
fresh ZenML repositories (the workspaces of the interrupted and of the concurrent runs: separate project copies,
ZenML stores and MLflow registries).

- with the cache: the last run of the interrupted workspace, whose model_building result came from the cache;
- without it: the two `--no-cache` runs of the concurrent workspace, in two processes.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.reliability.conftest import mlflow_client

pytestmark = pytest.mark.slow


def results(interrupted_runs, concurrent_runs):
    return [(interrupted_runs.workspace, interrupted_runs.final_summary),
            *((concurrent_runs.workspace, summary) for summary in concurrent_runs.summaries)]


def test_same_metrics_with_and_without_cache_in_two_repositories(interrupted_runs, concurrent_runs):
    final_steps = interrupted_runs.store["runs"][-1]["steps"]
    assert final_steps["model_building"] == "cached"
    assert {run["steps"]["model_building"] for run in concurrent_runs.store["runs"]} == {"completed"}
    (_, cached), *fresh = results(interrupted_runs, concurrent_runs)
    assert cached["test_metrics"]["roc_auc"] > 0.85
    for _, summary in fresh:
        assert summary["test_metrics"].keys() == cached["test_metrics"].keys()
        assert summary["test_metrics"] == pytest.approx(cached["test_metrics"], rel=0, abs=1e-12)


def test_same_predictions_from_the_registered_models(interrupted_runs, concurrent_runs):
    from heartml.core.dataset import load_dataset_spec
    from heartml.core.sources import read_source
    from heartml.core.validation import validate_records
    from heartml.registry.model_versions import load_probability_model, positive_probability
    from tests.conftest import ROOT

    spec = load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")
    raw = read_source("bundled://heart", spec.read_options).drop(columns=[spec.target.column])
    records = validate_records(raw, spec, "bundled://heart")  # typed as the pyfunc signature declares
    predictions = []
    for workspace, summary in results(interrupted_runs, concurrent_runs):
        model = summary["registered_model"]
        files = mlflow_client(workspace).get_model_version_download_uri(model["name"], model["version"])
        predictions.append(positive_probability(load_probability_model(files), records).to_numpy())
    assert len(predictions[0]) == len(records) == 918
    assert 0.2 < predictions[0].mean() < 0.8  # a real model, not a constant
    for other in predictions[1:]:
        np.testing.assert_allclose(other, predictions[0], rtol=0, atol=1e-12)
