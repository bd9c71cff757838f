"""MLflow model registry: register a trained pipeline as a tagged version, resolve aliases, load models.

A version is created with all its provenance tags in one call (atomic in MLflow's registry) and the tag
`registration_status=pending`; the pipeline's next step flips it to `complete` once the model files are also in
the ZenML artifact store. Only complete versions are ever given an alias or served, so a run killed half-way
leaves a pending version that nothing uses.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import re
import shutil
import tempfile
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.utils.logging_utils import suppress_logs
from pydantic import BaseModel
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import heartml.core
from heartml.core.calibration import base_classifier, calibration_method
from heartml.core.dataset import DatasetSpec
from heartml.core.errors import InputError
from heartml.core.evaluation import SELECTED_OOF
from heartml.core.preprocessing import clean_records
from heartml.core.versioning import DataVersion
from heartml.registry.record_guard import RecordGuard

logger = logging.getLogger(__name__)

STATUS_TAG = "registration_status"
# `abandoned`: the run that registered a pending version ended without completing it
# (see heartml/platform/reliability.py).
PENDING, COMPLETE, ABANDONED = "pending", "complete", "abandoned"
STAGING, PRODUCTION = "staging", "production"
THRESHOLD_TAG = "decision_threshold"
MODEL_CARD_TAG = "model_card"  # runs:/ URI of the version's model card (HTML)
ZENML_MODEL_TAG, ZENML_VERSION_ID_TAG = "zenml_model_name", "zenml_model_version_id"
ZENML_RUN_ID_TAG = "zenml_pipeline_run_id"
# Content hashes of the rows a version was trained on (heartml.core.versioning.row_hashes), in its MLflow run:
# the promotion gate compares champion and challenger only on rows neither was trained on.
TRAINING_ROWS_DIR, TRAINING_ROWS_FILE = "training_rows", "row_hashes.npy"
TRAINING_ROWS_TAG = "training_rows"  # how many
# The training rows' model features (cleaned) and out-of-fold probabilities, sampled: what drift monitoring
# compares scored records with (heartml/monitoring/drift.py).
REFERENCE_DIR, REFERENCE_FILE = "monitoring", "training_reference.parquet"
REFERENCE_ROWS = 10_000
# Distributions the saved model needs at load time, pinned to what trained it (modules -> distributions,
# so xgboost resolves to the installed `xgboost-cpu`).
_RUNTIME_MODULES = ("sklearn", "xgboost", "pandas", "numpy", "scipy", "cloudpickle", "pydantic", "yaml", "pandera",
                    "mlflow")
_EXTRAS = {"pandera": "[pandas]"}  # pandera's pandas backend is an extra since 0.35


class RegistryError(InputError):
    """The registry does not hold what was asked for: no production model, unknown or incomplete version."""


class RegisteredVersion(BaseModel):
    name: str
    version: str
    model_uri: str
    run_id: Optional[str] = None
    tracking_uri: str
    decision_threshold: float = 0.5


def provenance_tags(
    test_metrics: Dict[str, float],
    classifier: Any,
    data: DataVersion,
    training_date: str,
    git_commit: Optional[str],
    zenml: Dict[str, str],
) -> Dict[str, str]:
    """The tags every registered version carries: metrics, parameters, data, code, and where it came from."""
    trained = base_classifier(classifier)
    params = {k: v for k, v in trained.get_params().items() if isinstance(v, (int, float, str, bool))}
    return {
        **{f"metric.{name}": f"{value:.6f}" for name, value in test_metrics.items()},
        **{f"param.{name}": str(value) for name, value in params.items()},
        "classifier": type(trained).__name__,
        "calibration": calibration_method(classifier),
        "data_hash": data.data_hash,
        "data_source": data.source,
        "dataset": data.dataset,
        "data_rows": str(data.rows),
        "data_columns": str(data.columns),
        "training_date": training_date,
        "git_commit": git_commit or "unknown",
        **zenml,
    }


GUARD_STEP = "guard_records"


def serving_model(model: Pipeline, dataset: DatasetSpec, example: pd.DataFrame) -> Pipeline:
    """The trained pipeline behind the record guard (the training schema's rules, heartml/registry/record_guard.py)
    and the row-wise record cleaning, so the registered model takes raw records and refuses impossible ones.

    Cleaning is idempotent, so already cleaned frames (the test split) score the same.
    """
    cleaning = FunctionTransformer(clean_records, kw_args={"spec": dataset}, validate=False).fit(example)
    return Pipeline([(GUARD_STEP, RecordGuard(dataset)), ("clean_records", cleaning), *model.steps])


def model_requirements() -> List[str]:
    """`dist==version` pins for the saved model's environment, taken from this (pinned) environment."""
    distributions = importlib.metadata.packages_distributions()
    pins = []
    for module in _RUNTIME_MODULES:
        candidates = distributions.get(module, [])
        dist = module if module in candidates else (candidates[0] if candidates else module)
        pins.append(f"{dist}{_EXTRAS.get(dist, '')}=={importlib.metadata.version(dist)}")
    return pins


def register_model_version(
    model: Pipeline,
    dataset: DatasetSpec,
    input_example: pd.DataFrame,
    name: str,
    tags: Dict[str, str],
    decision_threshold: float = 0.5,
    *,
    training_rows: np.ndarray,
    reference: Optional[pd.DataFrame] = None,
    seed: int = 0,
) -> RegisteredVersion:
    """Log the serving model, the content hashes of its `training_rows` (heartml.core.versioning.row_hashes) and
    the drift `reference` (cleaned training features + `probability`, sampled to REFERENCE_ROWS) in the active
    MLflow run, and register it as a new, pending version of `name`."""
    _log_training_rows(training_rows)
    if reference is not None:
        _log_reference(reference, seed)
    tags = {**tags, TRAINING_ROWS_TAG: str(len(training_rows))}
    served = serving_model(model, dataset, input_example)
    signature = infer_signature(input_example, served.predict_proba(input_example))
    # cloudpickle is a deliberate choice (see _log_serving_model); MLflow warns about it on every save.
    with suppress_logs("mlflow.sklearn", re.compile(r"pickle or cloudpickle format")):
        info = _log_serving_model(served, signature, input_example, dataset, decision_threshold)
    # One call creates the version with every tag (MLflow retries on a concurrent version-number clash).
    with _printed_messages_to_log():
        version = mlflow.register_model(
            info.model_uri, name,
            tags={**{k: str(v) for k, v in tags.items()}, THRESHOLD_TAG: str(decision_threshold), STATUS_TAG: PENDING},
        )
    return RegisteredVersion(
        name=name, version=str(version.version), model_uri=f"models:/{name}/{version.version}",
        run_id=info.run_id, tracking_uri=mlflow.get_tracking_uri(), decision_threshold=decision_threshold,
    )


def _log_training_rows(hashes: np.ndarray) -> None:
    with tempfile.TemporaryDirectory(prefix="heartml-rows-") as folder:
        path = Path(folder) / TRAINING_ROWS_FILE
        np.save(path, np.asarray(hashes, dtype=np.uint64))
        mlflow.log_artifact(str(path), TRAINING_ROWS_DIR)


def drift_reference(train_set: pd.DataFrame, cv_predictions: pd.DataFrame, dataset: DatasetSpec) -> pd.DataFrame:
    """The training rows' model features beside the out-of-fold probability of the model as registered (one row
    of `cv_predictions` per training row, in order): honest probabilities to compare scored ones with."""
    if len(cv_predictions) != len(train_set):
        raise ValueError(f"cv_predictions has {len(cv_predictions)} rows, the training set {len(train_set)}")
    return train_set[dataset.model_features].assign(probability=cv_predictions[SELECTED_OOF].to_numpy())


def _log_reference(reference: pd.DataFrame, seed: int) -> None:
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(REFERENCE_ROWS, random_state=seed)
    with tempfile.TemporaryDirectory(prefix="heartml-reference-") as folder:
        path = Path(folder) / REFERENCE_FILE
        reference.reset_index(drop=True).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), REFERENCE_DIR)


def training_reference(client: MlflowClient, name: str, version: str) -> Optional[pd.DataFrame]:
    """The drift reference logged with a version; None for versions registered before it was."""
    found = client.get_model_version(name, version)
    if not found.run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="heartml-reference-") as folder:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=found.run_id, dst_path=folder,
                                                       artifact_path=f"{REFERENCE_DIR}/{REFERENCE_FILE}")
        except (MlflowException, OSError):
            return None
        return pd.read_parquet(path)


def training_row_hashes(version: ModelVersion) -> Optional[np.ndarray]:
    """The content hashes of the rows `version` was trained on; None for versions registered without them."""
    if TRAINING_ROWS_TAG not in version.tags or not version.run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="heartml-rows-") as folder:
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, dst_path=folder,
                                                   artifact_path=f"{TRAINING_ROWS_DIR}/{TRAINING_ROWS_FILE}")
        return np.load(path)


def model_code(destination: Path) -> Path:
    """A `heartml` package holding only what a registered model needs to unpickle: the core (`heartml/__init__.py`
    + `heartml/core/`: record cleaning, custom transformers) and the record guard (`heartml/registry/__init__.py` +
    `record_guard.py`); stacks, the rest of the registry and reports stay out of it."""
    core = Path(heartml.core.__file__).parent
    package = destination / "heartml"
    shutil.copytree(core, package / "core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(core.parent / "__init__.py", package / "__init__.py")
    registry = Path(__file__).parent
    (package / "registry").mkdir()
    for module in ("__init__.py", "record_guard.py"):
        shutil.copy2(registry / module, package / "registry" / module)
    return package


def _log_serving_model(served: Pipeline, signature: Any, input_example: pd.DataFrame, dataset: DatasetSpec,
                       decision_threshold: float) -> Any:
    with tempfile.TemporaryDirectory(prefix="heartml-model-code-") as staging:
        return mlflow.sklearn.log_model(
            served,
            name="model",
            signature=signature,
            input_example=input_example,
            # The pyfunc flavour (and `mlflow models serve`) answers with class probabilities, not hard labels.
            pyfunc_predict_fn="predict_proba",
            pip_requirements=model_requirements(),
            code_paths=[str(model_code(Path(staging)))],
            # skops would need every estimator type whitelisted at save and load; this registry only holds
            # models this pipeline trained, so cloudpickle (with the code shipped above) is the trusted path.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            # The training schema travels with the model: inference validates records against it.
            metadata={"dataset": dataset.model_dump(mode="json"), THRESHOLD_TAG: decision_threshold},
        )


class _LinesToLog(io.TextIOBase):
    """A text stream whose lines become records of this module's logger (warnings stay warnings)."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                level = logging.WARNING if re.search(r" (WARNING|ERROR) ", line) else logging.INFO
                logger.log(level, line)
        return len(text)


@contextmanager
def _printed_messages_to_log() -> Iterator[None]:
    """`mlflow.register_model` prints "Registered model ... already exists" and "Created version N ..." straight
    to stderr; as log records they stay in the step's stored logs without cluttering the terminal, where run.py
    reports the version."""
    with redirect_stderr(_LinesToLog()):
        yield


def download_model_files(model_uri: str, destination: Path) -> Path:
    """The registered model's files (MLmodel, pickle, environment, code) in a local folder."""
    destination.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination)))


def version_id(version: Optional[ModelVersion]) -> Optional[str]:
    """The version number as text (the SQL store hands out ints, the REST store strings), None for None."""
    return None if version is None else str(version.version)


def is_complete(version: ModelVersion) -> bool:
    return version.tags.get(STATUS_TAG) == COMPLETE


def mark_complete(client: MlflowClient, name: str, version: str) -> None:
    client.set_model_version_tag(name, version, STATUS_TAG, COMPLETE)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> Optional[ModelVersion]:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def complete_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """A version that exists and finished registering, or a RegistryError saying which of the two it is not."""
    try:
        found = client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"model {name!r} has no version {version!r} in the registry at "
                            f"{mlflow.get_tracking_uri()}") from exc
    if not is_complete(found):
        raise RegistryError(f"model {name!r} version {version}: registration did not complete "
                            f"({STATUS_TAG}={found.tags.get(STATUS_TAG, 'missing')}); it cannot be promoted or served")
    return found


def serving_version(client: MlflowClient, name: str, alias: str = PRODUCTION) -> ModelVersion:
    """The complete version behind `alias`, or a RegistryError that says what to do."""
    found = version_by_alias(client, name, alias)
    if found is None:
        raise RegistryError(
            f"no {alias!r} version of model {name!r} in the registry at {mlflow.get_tracking_uri()}: train one "
            f"(python run.py) or promote one (python run.py promote VERSION --to {alias} --reason TEXT)"
        )
    if not is_complete(found):
        raise RegistryError(f"alias {alias!r} of model {name!r} points at version {version_id(found)}, "
                            f"whose registration did not complete")
    return found


def decision_threshold(version: ModelVersion) -> float:
    return float(version.tags.get(THRESHOLD_TAG, 0.5))


def training_dataset(model_uri: str) -> Optional[DatasetSpec]:
    """The dataset description the model was trained with (stored in its MLmodel metadata)."""
    metadata: Dict[str, Any] = mlflow.models.get_model_info(model_uri).metadata or {}
    return DatasetSpec.model_validate(metadata["dataset"]) if "dataset" in metadata else None


def load_probability_model(model_uri: str) -> Any:
    """The pyfunc model: enforces the registered input signature, returns class probabilities."""
    return mlflow.pyfunc.load_model(model_uri)


def load_scoring_model(model_uri: str) -> Pipeline:
    """The registered pipeline after its record guard (record cleaning, features, classifier), for batch scoring.

    Batches scored with it have passed `validate_records` against the training schema stored in this same model
    (the load step), which is what the guard would check again. The pyfunc wrapper would also copy the batch:
    about 20% of the scoring time.
    """
    model = mlflow.sklearn.load_model(model_uri)
    return model[1:] if model.steps[0][0] == GUARD_STEP else model


def input_columns(pyfunc_model: Any) -> List[str]:
    schema = pyfunc_model.metadata.get_input_schema()
    return list(schema.input_names()) if schema is not None else []


def positive_probability(pyfunc_model: Any, records: pd.DataFrame) -> pd.Series:
    """P(positive class) for each record; the target is encoded 1 = positive at cleaning, so column 1."""
    proba = pyfunc_model.predict(records[input_columns(pyfunc_model)])
    return pd.Series(pd.DataFrame(proba).iloc[:, 1].to_numpy(dtype=float), index=records.index)
