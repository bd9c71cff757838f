"""Bad data stops `python run.py` before any run starts: one clear line per problem, exit code 2, no traceback,
no new pipeline run and no new model version."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List

import pytest

from tests.bad_inputs import BAD_INPUTS


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    expected: List[str]

    @property
    def error_lines(self) -> List[str]:
        return [line.removeprefix("error: ") for line in self.stderr.splitlines() if line.startswith("error: ")]


@dataclass
class BadRuns:
    outcomes: Dict[str, Outcome]
    versions_before: int
    versions_after: int
    runs_before: int
    runs_after: int


def _registry_and_runs(trained_run, zenml_client):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=trained_run.summary["mlflow_tracking_uri"])
    name = trained_run.summary["registered_model"]["name"]
    return len(client.search_model_versions(f"name = '{name}'")), zenml_client.list_pipeline_runs(size=1).total


@pytest.fixture(scope="module")
def bad_runs(trained_run, workspace, zenml_client, tmp_path_factory) -> BadRuns:
    from heartml.core.sources import read_source

    folder = tmp_path_factory.mktemp("bad-inputs")
    raw = read_source("bundled://heart")
    cases = {}
    for case in BAD_INPUTS:
        path = folder / f"{case.name}.csv"
        case.write(raw, path)
        cases[case.name] = (["--source", str(path)], case.expected(str(path)))
    broken_dataset = folder / "broken.yaml"
    broken_dataset.write_text("name: broken\ndefault_source: bundled://heart\ntarget: {column: HeartDisease}\n"
                              "features: {Age: {kind: numeric, max: 120, unit: years}}\n")
    cases["broken_dataset_description"] = (
        ["--dataset", str(broken_dataset)], [f"{broken_dataset}: features.Age.unit: Extra inputs are not permitted"])
    cases["missing_sql_table"] = (
        ["--source", f"sqlite:///{folder / 'none.db'}#table=heart"],
        [f"sqlite:///{folder / 'none.db'}#table=heart: database file {folder / 'none.db'} not found"])

    versions_before, runs_before = _registry_and_runs(trained_run, zenml_client)

    def run(item):
        name, (args, expected) = item
        result = workspace.run(*args, "--config", "tests/configs/training-fast.yaml", check=False, timeout=300)
        return name, Outcome(result.returncode, result.stdout, result.stderr, expected)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores; each call fails within seconds
        outcomes = dict(pool.map(run, cases.items()))
    versions_after, runs_after = _registry_and_runs(trained_run, zenml_client)
    return BadRuns(outcomes, versions_before, versions_after, runs_before, runs_after)


@pytest.mark.parametrize("name", [case.name for case in BAD_INPUTS] + ["broken_dataset_description",
                                                                       "missing_sql_table"])
def test_bad_input_fails_with_its_one_line_error(bad_runs, name):
    outcome = bad_runs.outcomes[name]
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    assert outcome.error_lines == outcome.expected
    assert "Traceback" not in outcome.stdout + outcome.stderr
    assert "Pipeline run" not in outcome.stdout + outcome.stderr  # no run was started


def test_nothing_was_registered_and_no_run_started(bad_runs):
    assert bad_runs.versions_after == bad_runs.versions_before >= 1
    assert bad_runs.runs_after == bad_runs.runs_before >= 1
