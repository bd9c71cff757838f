"""Registration on a real MLflow SQLite registry: what a version carries, and what it takes to be served."""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from heartml.core.errors import InputError
from heartml.core.preprocessing import clean_frame, features_and_target
from heartml.core.sources import read_source
from heartml.core.versioning import DataVersion, row_hashes, source_commit
from heartml.registry.model_versions import (
    COMPLETE,
    PENDING,
    PRODUCTION,
    STATUS_TAG,
    RegistryError,
    complete_version,
    decision_threshold,
    download_model_files,
    load_probability_model,
    mark_complete,
    positive_probability,
    provenance_tags,
    register_model_version,
    serving_version,
    training_dataset,
)
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def registered(mlflow_store, strong_and_weak_models, heart_splits, heart_spec):
    strong, _ = strong_and_weak_models
    train, test = heart_splits
    X_test, _ = features_and_target(test, heart_spec)
    tags = provenance_tags({"roc_auc": 0.91}, strong.named_steps["classifier"],
                           DataVersion(data_hash="ab" * 32, source="bundled://heart", dataset="heart", rows=918,
                                       columns=12),
                           training_date="2026-11-26T10:00:00+00:00", git_commit=None,
                           zenml={"zenml_pipeline_run_id": "run-1"})
    with mlflow.start_run():
        version = register_model_version(strong, heart_spec, X_test.head(5), "unit_registry", tags,
                                         decision_threshold=0.4,
                                         training_rows=row_hashes(train, heart_spec.model_features))
    return version


def test_a_new_version_is_pending_and_carries_every_provenance_tag(registered):
    version = MlflowClient().get_model_version(registered.name, registered.version)
    tags = version.tags
    assert tags[STATUS_TAG] == PENDING
    assert tags["metric.roc_auc"] == "0.910000"
    assert tags["param.C"] == "1.0" and tags["classifier"] == "LogisticRegression"
    assert tags["data_hash"] == "ab" * 32 and tags["data_source"] == "bundled://heart" and tags["data_rows"] == "918"
    assert tags["training_date"] == "2026-11-26T10:00:00+00:00"
    assert tags["git_commit"] == "unknown"  # no commit given
    assert tags["zenml_pipeline_run_id"] == "run-1"
    assert decision_threshold(version) == 0.4
    assert version.run_id == registered.run_id


def test_signature_requirements_and_schema_travel_with_the_model(registered, heart_spec):
    uri = registered.model_uri
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.input_names() == heart_spec.model_features
    assert training_dataset(uri) == heart_spec
    requirements = open(mlflow.pyfunc.get_model_dependencies(uri)).read().split()
    import sklearn
    import xgboost

    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert f"xgboost-cpu=={xgboost.__version__}" in requirements


def test_registered_model_takes_raw_records(registered, heart_spec, strong_and_weak_models):
    """The registered model cleans each record itself: a raw `Cholesterol = 0` means "not measured"."""
    strong, _ = strong_and_weak_models
    raw = read_source("bundled://heart").drop(columns=[heart_spec.target.column]).head(30)
    raw = raw.astype({c: float for c in heart_spec.columns_of_kind("numeric", "binary")})
    model = load_probability_model(registered.model_uri)
    unmeasured = raw.assign(Cholesterol=0.0)
    missing = raw.assign(Cholesterol=np.nan)
    assert np.allclose(positive_probability(model, unmeasured), positive_probability(model, missing))
    cleaned, _ = clean_frame(read_source("bundled://heart").head(30), heart_spec)
    assert len(cleaned) == len(raw)  # no duplicates dropped, rows line up
    expected = strong.predict_proba(cleaned.drop(columns=[heart_spec.target.column]))[:, 1]
    assert np.allclose(positive_probability(model, raw), expected)


def test_model_loads_in_a_process_without_this_checkout(registered, tmp_path):
    code = (f"import mlflow; mlflow.set_tracking_uri({mlflow.get_tracking_uri()!r}); "
            f"m = mlflow.pyfunc.load_model({registered.model_uri!r}); "
            "import heartml; print(type(m).__name__, heartml.__file__)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    kind, heartml_file = result.stdout.split()[-2:]
    assert kind == "PyFuncModel"
    # The code shipped inside the model (MLflow's code/ folder), not a checkout.
    assert not heartml_file.startswith(str(ROOT)) and heartml_file.endswith("/code/heartml/__init__.py")


def test_model_code_is_the_core_and_the_record_guard(registered, tmp_path):
    """The code folder inside the model holds heartml/core/ and the record guard only: the core imports neither zenml
    nor mlflow nor another heartml layer; the guard imports mlflow's exception and the core, never zenml."""
    code = download_model_files(registered.model_uri, tmp_path / "model") / "code"
    modules = sorted(str(path.relative_to(code)) for path in code.rglob("*.py"))
    assert "heartml/core/preprocessing.py" in modules and "heartml/core/transforms.py" in modules
    assert [m for m in modules if not m.startswith("heartml/core/")] == [
        "heartml/__init__.py", "heartml/registry/__init__.py", "heartml/registry/record_guard.py"]
    for module in modules:
        for node in ast.walk(ast.parse((code / module).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] != "zenml", (module, name)
                assert not name.startswith("heartml.") or name.startswith("heartml.core"), (module, name)
                if module.startswith("heartml/core/"):
                    assert name.split(".")[0] != "mlflow", (module, name)


def test_the_registered_model_refuses_an_impossible_patient_in_one_line_per_problem(registered, heart_splits,
                                                                                      heart_spec):
    """What every server loading the pyfunc does: the guard's MLflow INVALID_PARAMETER_VALUE, not a probability."""
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(registered.model_uri)
    records = features_and_target(heart_splits[1], heart_spec)[0].head(3).reset_index(drop=True)
    assert model.predict(records).shape == (3, 2)
    impossible = records.head(1).assign(Age=400.0, Sex="X", RestingBP=-140.0)
    with pytest.raises(MlflowException) as refused:
        model.predict(impossible)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    lines = refused.value.message.splitlines()
    assert any("'Age'" in line and "120" in line for line in lines), lines
    assert any("'Sex'" in line and "'X'" in line for line in lines), lines
    assert any("'RestingBP'" in line for line in lines) and all(line.startswith("request") for line in lines), lines


def test_only_complete_versions_can_be_served_or_promoted(registered):
    client = MlflowClient()
    with pytest.raises(RegistryError, match="registration did not complete"):
        complete_version(client, registered.name, registered.version)
    client.set_registered_model_alias(registered.name, PRODUCTION, registered.version)  # e.g. by hand in the UI
    with pytest.raises(RegistryError, match="whose registration did not complete"):
        serving_version(client, registered.name)
    mark_complete(client, registered.name, registered.version)
    assert client.get_model_version(registered.name, registered.version).tags[STATUS_TAG] == COMPLETE
    assert str(serving_version(client, registered.name).version) == registered.version


def test_missing_version_or_alias_is_one_clear_line(registered):
    client = MlflowClient()
    with pytest.raises(RegistryError) as missing:
        complete_version(client, registered.name, "999")
    assert str(missing.value).startswith("model 'unit_registry' has no version '999' in the registry at sqlite:///")
    with pytest.raises(RegistryError) as no_alias:
        serving_version(client, "no_such_model")
    assert "no 'production' version of model 'no_such_model'" in str(no_alias.value)
    assert "python run.py promote VERSION --to production" in str(no_alias.value)
    assert isinstance(no_alias.value, InputError) and len(no_alias.value.lines) == 1


def test_concurrent_registrations_get_distinct_versions(registered):
    def register(_):
        return mlflow.register_model(registered.model_uri, "unit_concurrent", tags={STATUS_TAG: PENDING}).version

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = [int(v) for v in pool.map(register, range(8))]
    assert sorted(versions) == list(range(1, 9))


def test_source_commit_outside_a_checkout_is_none(tmp_path):
    assert source_commit(tmp_path) is None


def test_registration_keeps_mlflow_chatter_in_the_log_not_on_the_terminal(mlflow_store, strong_and_weak_models,
                                                                          heart_splits, heart_spec, capsys, caplog):
    """MLflow's cloudpickle warning (a deliberate choice) is dropped; its "Created version" print becomes a log
    record, which the step's stored logs keep."""
    import logging

    _, test = heart_splits
    X_test, _ = features_and_target(test, heart_spec)
    with caplog.at_level(logging.INFO, logger="heartml.registry.model_versions"), mlflow.start_run():
        version = register_model_version(strong_and_weak_models[0], heart_spec, X_test.head(5), "unit_registry_quiet",
                                         {}, decision_threshold=0.5,
                                         training_rows=row_hashes(heart_splits[0], heart_spec.model_features))
    printed = capsys.readouterr()
    assert "cloudpickle" not in printed.err + printed.out and "Created version" not in printed.err + printed.out
    assert f"Created version '{version.version}' of model 'unit_registry_quiet'." in caplog.text
