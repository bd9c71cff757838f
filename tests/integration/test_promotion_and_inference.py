"""Train -> promote -> infer on the real local stack (temporary ZenML store, SQLite MLflow registry).

A second training run with a deliberately weak model is registered but not promoted; manual promotion and
rollback move the alias and the ZenML stage with a recorded reason; malformed inference input writes nothing.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import config_with_model_name, tracking

MODEL = "heart_failure_classifier"  # the shared trained run's model: read here, never moved
PROMOTED = "promotion_check"  # this module's own model, whose aliases its tests move
N_RECORDS = 25


def alias_version(client: MlflowClient, alias: str, model: str = PROMOTED):
    from heartml.registry.model_versions import version_by_alias, version_id

    return version_id(version_by_alias(client, model, alias))


def zenml_version(zenml_client, client: MlflowClient, version: str):
    tags = client.get_model_version(PROMOTED, version).tags
    return zenml_client.get_model_version(PROMOTED, UUID(tags["zenml_model_version_id"]), hydrate=True)


@dataclass
class WeakRun:
    summary: dict
    stdout: str
    production_before: str


@pytest.fixture(scope="module")
def champion_run(workspace, tmp_path_factory) -> dict:
    """This module's first model: the fast config under its own model name, so it becomes that model's production."""
    path = tmp_path_factory.mktemp("champion") / "summary.json"
    workspace.run("--stack", "local", "--config", config_with_model_name(workspace, PROMOTED),
                  "--summary-json", str(path))
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def weak_run(champion_run, workspace, tmp_path_factory) -> WeakRun:
    """A second training run of the same model whose classifier is one split on one feature."""
    with tracking(champion_run["mlflow_tracking_uri"]) as client:
        production_before = alias_version(client, "production")
    path = tmp_path_factory.mktemp("weak") / "summary.json"
    config = config_with_model_name(workspace, PROMOTED, base="tests/configs/training-weak.yaml", quality_gate=False)
    result = workspace.run("--config", config, "--summary-json", str(path))
    return WeakRun(summary=json.loads(path.read_text()), stdout=result.stdout, production_before=production_before)


@pytest.fixture(scope="module")
def patient_records(tmp_path_factory) -> str:
    """Incoming patients as a clinic would send them: no outcome column, an identifier to keep."""
    from heartml.core.sources import read_source

    frame = read_source("bundled://heart").drop(columns=["HeartDisease"]).tail(N_RECORDS)
    path = tmp_path_factory.mktemp("records") / "patients.csv"
    frame.assign(patient_id=[f"P{i:03d}" for i in range(N_RECORDS)]).to_csv(path, index=False)
    return str(path)


def error_lines(result) -> list:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_first_model_becomes_production(trained_run):
    summary = trained_run.summary
    promotion = summary["promotion"]
    assert promotion["decision"] == "promoted" and promotion["champion_version"] is None
    assert promotion["production_version"] == summary["registered_model"]["version"]
    assert promotion["challenger"] == pytest.approx(summary["test_metrics"]["roc_auc"])
    assert "Promotion:        promoted: no production model yet" in trained_run.stdout


def test_weak_model_is_registered_complete_but_not_promoted(weak_run):
    promotion = weak_run.summary["promotion"]
    version = weak_run.summary["registered_model"]["version"]
    assert promotion["decision"] == "not_promoted"
    assert (promotion["metric"], promotion["margin"]) == ("roc_auc", 0.005)
    assert promotion["champion_version"] == weak_run.production_before
    assert promotion["challenger"] == pytest.approx(weak_run.summary["test_metrics"]["roc_auc"])
    assert promotion["challenger"] < promotion["champion"] - 0.05
    assert f"challenger roc_auc={promotion['challenger']:.4f} vs champion v{weak_run.production_before}" \
        in weak_run.stdout
    with tracking(weak_run.summary["mlflow_tracking_uri"]) as client:
        assert alias_version(client, "production") == weak_run.production_before
        assert alias_version(client, "staging") == version
        registered = client.get_model_version(PROMOTED, version)
        tags = registered.tags
    assert tags["registration_status"] == "complete"
    # Its model card records the refusal.
    assert tags["model_card"] == weak_run.summary["model_card"]["mlflow_artifact"]
    assert "Promotion: not promoted: challenger roc_auc=" in registered.description
    assert tags["promotion.decision"] == "not_promoted"
    assert tags["param.max_depth"] == "1" and tags["param.n_estimators"] == "1"
    assert tags["data_source"] == "bundled://heart" and tags["git_commit"]


def test_the_next_run_tries_the_production_versions_parameters_first(champion_run, weak_run, zenml_client):
    """Warm start: each family's search begins with the parameters it has in the production version (those the
    new config does not fix); the weak config fixes n_estimators and max_depth, so those are left out."""
    def building(summary):
        return zenml_client.get_pipeline_run(summary["run_id"]).steps["model_building"]

    champion = building(champion_run).outputs["model_comparison"][0].load().set_index("family")
    production = json.loads(champion.loc["xgboost", "params"])
    weak = building(weak_run.summary)
    assert weak.outputs["model"][0].run_metadata["warm_start_from_version"] == \
        champion_run["registered_model"]["version"]
    with tracking(weak_run.summary["mlflow_tracking_uri"]) as client:
        run_id = client.get_model_version(PROMOTED, weak_run.summary["registered_model"]["version"]).run_id
        (tuning_run,) = client.search_runs([client.get_run(run_id).info.experiment_id],
                                           f"tags.mlflow.parentRunId = '{run_id}' and tags.family = 'xgboost'")
        trials = pd.read_csv(client.download_artifacts(tuning_run.info.run_id, "tuning/xgboost_trials.csv"))
    first = trials.set_index("trial").loc[0]
    searched = [c.removeprefix("param.") for c in trials.columns if c.startswith("param.")]
    assert set(searched) == {"learning_rate", "min_child_weight", "subsample", "colsample_bytree", "reg_lambda"}
    assert {name: first[f"param.{name}"] for name in searched} == pytest.approx({n: production[n] for n in searched})
    assert not (trials.set_index("trial").drop(index=0)[[f"param.{n}" for n in searched]] ==
                [production[n] for n in searched]).all(axis=1).any()  # the other trials are sampled


def test_zenml_model_versions_mirror_the_aliases_and_link_the_run_artifacts(weak_run, zenml_client):
    with tracking(weak_run.summary["mlflow_tracking_uri"]) as client:
        weak = zenml_version(zenml_client, client, weak_run.summary["registered_model"]["version"])
        production = zenml_version(zenml_client, client, weak_run.production_before)
        weak_version = weak_run.summary["registered_model"]["version"]
        registry_model = mlflow.pyfunc.load_model(f"models:/{PROMOTED}/{weak_version}")
    assert (weak.stage, production.stage) == ("staging", "production")
    assert weak.run_metadata["promotion"]["decision"] == "not_promoted"
    links = zenml_client.list_model_version_artifact_links(model_version_id=weak.id, size=100, hydrate=True)
    linked = {link.artifact_version.artifact.name: str(link.artifact_version.type) for link in links.items}
    for name in ("raw_dataset", "test_set", "test_metrics", "registered_model", "promotion_decision"):
        assert name in linked, name
    for name in ("preprocessing", "feature_pipeline", "model", "mlflow_model"):
        assert linked.get(name) == "ModelArtifact", name
    # The model files in the ZenML artifact store are the registered model.
    files = weak.get_artifact("mlflow_model").load()
    assert (files / "MLmodel").is_file()
    from heartml.core.sources import read_source

    rows = read_source("bundled://heart").drop(columns=["HeartDisease"]).head(10).astype(
        {c: float for c in ("Age", "RestingBP", "Cholesterol", "FastingBS", "MaxHR", "Oldpeak")})
    assert np.allclose(mlflow.pyfunc.load_model(str(files)).predict(rows), registry_model.predict(rows))


def test_inference_writes_the_production_models_predictions(trained_run, workspace, patient_records, tmp_path):
    output, summary_path = tmp_path / "out" / "predictions.csv", tmp_path / "inference.json"
    result = workspace.run("predict", "--input", patient_records, "--output", str(output),
                           "--summary-json", str(summary_path))
    summary = json.loads(summary_path.read_text())
    predictions = pd.read_csv(output, dtype={"model_version": str})
    with tracking(trained_run.summary["mlflow_tracking_uri"]) as client:
        production = alias_version(client, "production", MODEL)
        from heartml.registry.model_versions import positive_probability, training_dataset
        from heartml.registry.serving import validate_records

        uri = f"models:/{MODEL}/{production}"
        records = pd.read_csv(patient_records)
        expected = positive_probability(mlflow.pyfunc.load_model(uri),
                                        validate_records(records, training_dataset(uri), "test"))
    assert summary["model"] == {"name": MODEL, "version": production, "alias": "production"}
    assert summary["output"]["rows"] == N_RECORDS
    assert f"Scored {N_RECORDS} records with {MODEL} version {production} (production)" in result.stdout
    assert predictions["patient_id"].tolist() == records["patient_id"].tolist()
    assert np.allclose(predictions["probability"], expected)
    assert (predictions["predicted_class"] == (expected >= 0.5).astype(int)).all()
    assert set(predictions["model_version"]) == {production} and set(predictions["model_name"]) == {MODEL}
    assert set(predictions["pipeline_run"]) == {summary["run_name"]}


def test_inference_appends_to_a_sqlite_table(trained_run, workspace, patient_records, tmp_path):
    database = tmp_path / "clinic.db"
    workspace.run("predict", "--input", patient_records, "--output", f"sqlite:///{database}")
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    table = pd.read_sql_table("predictions", engine)
    engine.dispose()
    with tracking(trained_run.summary["mlflow_tracking_uri"]) as client:
        production = alias_version(client, "production", MODEL)
    assert len(table) == N_RECORDS
    assert set(table["model_version"]) == {production}
    assert table["probability"].between(0, 1).all()


def test_malformed_input_writes_no_output(trained_run, workspace, patient_records, tmp_path):
    bad = pd.read_csv(patient_records)
    bad.loc[3, "ChestPainType"] = "XYZ"
    bad = bad.drop(columns=["Oldpeak"])
    bad_path, output = tmp_path / "bad.csv", tmp_path / "predictions.parquet"
    bad.to_csv(bad_path, index=False)
    result = workspace.run("predict", "--input", str(bad_path), "--output", str(output), check=False)
    assert result.returncode == 2
    assert sorted(error_lines(result)) == sorted([
        f"error: {bad_path}: column 'Oldpeak': rule 'required column' failed: the column is missing",
        f"error: {bad_path}: column 'ChestPainType': rule 'one of [ATA, NAP, ASY, TA]' failed for 1 row "
        f"(e.g. 'XYZ')",
    ])
    assert "Traceback" not in result.stderr + result.stdout
    assert not output.exists() and list(tmp_path.iterdir()) == [bad_path]


def test_no_production_model_is_one_line_and_a_non_zero_exit(trained_run, workspace, patient_records, tmp_path):
    config = yaml.safe_load((workspace.project / "configs" / "inference.yaml").read_text())
    config["parameters"]["registered_model_name"] = "never_trained"
    config_path = tmp_path / "inference.yaml"
    config_path.write_text(yaml.safe_dump(config))
    output = tmp_path / "predictions.csv"
    result = workspace.run("predict", "--config", str(config_path), "--input", patient_records,
                           "--output", str(output), check=False)
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: no 'production' version of model 'never_trained'")
    assert "Traceback" not in result.stderr and not output.exists()


def test_manual_promotion_and_rollback_are_recorded(weak_run, workspace, zenml_client):
    weak, champion = weak_run.summary["registered_model"]["version"], weak_run.production_before
    config = config_with_model_name(workspace, PROMOTED)  # `promote` reads the model's name from it
    result = workspace.run("promote", weak, "--to", "production", "--reason", "integration test: override",
                           "--config", config)
    assert f"Promoted {PROMOTED} version {weak} to production (was version {champion})" in result.stdout
    with tracking(weak_run.summary["mlflow_tracking_uri"]) as client:
        assert alias_version(client, "production") == weak
        assert client.get_model_version(PROMOTED, weak).tags["manual_promotion.production.reason"] == \
            "integration test: override"
        promoted, archived = zenml_version(zenml_client, client, weak), zenml_version(zenml_client, client, champion)
        assert (promoted.stage, archived.stage) == ("production", "archived")
        assert promoted.run_metadata["manual_promotion_production"]["reason"] == "integration test: override"

        workspace.run("promote", champion, "--to", "production", "--reason", "integration test: rollback",
                      "--config", config)
        assert alias_version(client, "production") == champion
        restored, weak_again = zenml_version(zenml_client, client, champion), zenml_version(zenml_client, client, weak)
        assert (restored.stage, weak_again.stage) == ("production", "staging")  # weak still holds `staging`
        audit = client.search_runs([client.get_experiment_by_name("model-promotions").experiment_id])
        assert {(r.data.params["version"], r.data.params["reason"]) for r in audit} >= {
            (weak, "integration test: override"), (champion, "integration test: rollback")}


def test_earlier_versions_are_archived_as_challengers_lose_and_win(weak_run, zenml_client):
    """ZenML keeps one version per stage, `archived` too: a winner taking both aliases archives the champion and
    the last losing challenger, although an earlier version is archived already."""
    from heartml.platform.zenml_registry import mirror_stages_to_zenml
    from heartml.registry.model_versions import ZENML_MODEL_TAG, ZENML_VERSION_ID_TAG

    name = "mirror_check"
    zenml_client.create_model(name=name)
    with tracking(weak_run.summary["mlflow_tracking_uri"]) as client:
        source = client.get_model_version(PROMOTED, weak_run.production_before).source
        client.create_registered_model(name)
        versions = []
        for number in range(1, 5):
            created = zenml_client.create_model_version(model_name_or_id=name, name=f"v{number}")
            versions.append(created.id)
            client.create_model_version(name, source, tags={ZENML_MODEL_TAG: name,
                                                            ZENML_VERSION_ID_TAG: str(created.id)})
        # (production, staging) after each gate: v1 first; v2 loses; v3 wins; v4 loses
        for production, staging in (("1", "1"), ("1", "2"), ("3", "3"), ("3", "4")):
            client.set_registered_model_alias(name, "production", production)
            client.set_registered_model_alias(name, "staging", staging)
            mirror_stages_to_zenml(client, name)
    stages = [str(zenml_client.get_model_version(name, version_id).stage) for version_id in versions]
    assert stages == ["archived", "archived", "production", "staging"]


def test_promoting_an_unknown_version_fails_in_one_line(trained_run, workspace):
    result = workspace.run("promote", "999", "--to", "production", "--reason", "typo", check=False)
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"error: model '{MODEL}' has no version '999'")


def test_a_champion_is_never_scored_on_the_rows_it_was_trained_on(champion_run, weak_run, workspace, zenml_client,
                                                                   tmp_path):
    """A challenger trained on another split (seed 7): most of its test split is the champion's training data. Those
    rows are left out of the comparison; with fewer than promotion.min_rows left, nothing is promoted."""
    from heartml.core.dataset import load_dataset_spec
    from heartml.core.versioning import row_hashes

    config = yaml.safe_load(Path(config_with_model_name(workspace, PROMOTED)).read_text())
    config["parameters"]["seed"] = 7
    path = tmp_path / "reseeded.yaml"
    path.write_text(yaml.safe_dump(config))
    with tracking(champion_run["mlflow_tracking_uri"]) as client:
        production_before = alias_version(client, "production")
    workspace.run("--config", str(path), "--summary-json", str(path.with_suffix(".json")))
    summary = json.loads(path.with_suffix(".json").read_text())
    decision = summary["promotion"]

    spec = load_dataset_spec(workspace.project / "configs" / "datasets" / "heart.yaml")

    def split(run_summary, name):
        run = zenml_client.get_pipeline_run(run_summary["run_id"])
        return run.steps["data_preprocessing"].outputs[name][0].load()

    champion_rows = row_hashes(split(champion_run, "train_set"), spec.model_features)  # weak_run: the same split
    test_rows = row_hashes(split(summary, "test_set"), spec.model_features)
    unseen = int((~np.isin(test_rows, champion_rows)).sum())
    assert unseen < len(test_rows) / 2  # the new test split is mostly the champion's training data
    assert (decision["rows_compared"], decision["rows_left_out"]) == (unseen, len(test_rows) - unseen)
    assert decision["champion_version"] == production_before
    assert unseen < 50, "with seeds 42 and 7 about a fifth of the test rows are unseen by both"
    assert decision["decision"] == "not_promoted" and decision["champion"] is None
    assert decision["reason"].startswith(f"only {unseen} of {len(test_rows)} test rows are unseen by both")
    with tracking(champion_run["mlflow_tracking_uri"]) as client:
        assert alias_version(client, "production") == production_before
        version = client.get_model_version(PROMOTED, summary["registered_model"]["version"])
        assert version.tags["promotion.rows_compared"] == str(unseen)
        assert version.tags["training_rows"] == str(len(split(summary, "train_set")))
