"""Batch inference: validate incoming records with the model's training schema, score them, label the output."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from heartml.core.dataset import DatasetSpec
from heartml.core.errors import DataValidationError
from heartml.core.progress import progress_bar
from heartml.core.validation import validate_records  # noqa: F401 (the steps and run.py import it from here)
from heartml.registry.model_versions import (
    PRODUCTION,
    RegistryError,
    decision_threshold,
    serving_version,
    training_dataset,
    version_id,
)

# Records per model call: a progress bar that moves on big batches, and bounded memory for the model's own copies.
SCORING_CHUNK_ROWS = 50_000
PREDICTION_COLUMNS = ("probability", "predicted_class", "decision_threshold", "model_name", "model_version",
                      "scored_at", "pipeline_run")
# Rules about a whole training set that say nothing about a batch to score (one record may lack a measurement).


class ServingModel(BaseModel):
    """The registered version a batch is scored with, and what it needs from its input."""

    name: str
    version: str
    alias: str
    uri: str
    decision_threshold: float
    dataset: DatasetSpec
    tracking_uri: str


def resolve_serving_model(client: MlflowClient, name: str, alias: str = PRODUCTION) -> ServingModel:
    return serving_model_of(client, serving_version(client, name, alias), alias)


def serving_model_of(client: MlflowClient, version: ModelVersion, alias: str = "") -> ServingModel:
    """A complete registered version as a ServingModel (`alias`: the alias it was reached by, if any)."""
    name, number = version.name, version_id(version)
    uri = f"models:/{name}/{number}"
    dataset = training_dataset(uri)
    if dataset is None:
        raise RegistryError(f"model {name!r} version {number} carries no training schema "
                            f"(registered by an older pipeline); promote a newer version")
    return ServingModel(name=name, version=number, alias=alias, uri=uri,
                        decision_threshold=decision_threshold(version), dataset=dataset,
                        tracking_uri=client.tracking_uri)


def score_in_chunks(model: Pipeline, records: pd.DataFrame, chunk_rows: int = SCORING_CHUNK_ROWS) -> pd.Series:
    """P(positive) for every record, `chunk_rows` at a time (a progress bar on a terminal)."""
    parts = []
    with progress_bar(len(records), "scoring", unit="record") as bar:
        for start in range(0, len(records), chunk_rows):
            chunk = records.iloc[start:start + chunk_rows]
            # The target is encoded 1 = positive at cleaning, so column 1; the pipeline picks its own columns.
            parts.append(pd.Series(model.predict_proba(chunk)[:, 1], index=chunk.index))
            bar.update(len(chunk))
    return pd.concat(parts) if parts else pd.Series(index=records.index, dtype=float)


def predict_records(records: pd.DataFrame, model: Pipeline, serving: ServingModel, source: str,
                    pipeline_run: str = "") -> pd.DataFrame:
    """Every input column as given, plus probability, class at the model's threshold, and which model said so.

    `model` is the registered pipeline (`load_scoring_model`), `records` have passed `validate_records` (the
    pipeline's load step does that, once): scoring costs little more than the model's own `predict_proba`.
    """
    clashes = [column for column in PREDICTION_COLUMNS if column in records.columns]
    if clashes:
        raise DataValidationError([f"{source}: column '{column}': rule 'not an output column' failed: the output "
                                   f"adds a column of that name" for column in clashes])
    probability = score_in_chunks(model, records)
    return records.assign(
        probability=probability,
        predicted_class=(probability >= serving.decision_threshold).astype("int8"),
        decision_threshold=serving.decision_threshold,
        model_name=serving.name,
        model_version=serving.version,
        scored_at=datetime.now(timezone.utc).replace(microsecond=0),
        pipeline_run=pipeline_run,
    )
