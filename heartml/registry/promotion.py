"""Promotion over MLflow aliases: the champion/challenger gate, manual promotion, and the ZenML stage mirror.

Aliases (MLflow stages are deprecated):
- `staging` follows the newest complete version, whether or not it won: the latest candidate, for review.
- `production` moves only through the gate (the challenger beats the champion by more than the margin on the rows of
  this run's test split that neither was trained on) or through a manual promotion with a recorded reason.
MLflow is the source of truth; ZenML model stages are derived from the aliases after every change.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import Dict, Literal, Optional, Tuple

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, Field, field_validator

from heartml.core.dataset import DatasetSpec
from heartml.core.errors import InputError
from heartml.core.evaluation import classification_metrics
from heartml.core.preprocessing import features_and_target
from heartml.core.versioning import row_hashes
from heartml.registry.model_versions import (
    PRODUCTION,
    STAGING,
    complete_version,
    decision_threshold,
    input_columns,
    load_probability_model,
    positive_probability,
    training_row_hashes,
    version_by_alias,
    version_id,
)

LOWER_IS_BETTER = frozenset({"brier"})
KNOWN_METRICS = tuple(classification_metrics([0, 1], [0.2, 0.8]))
AUDIT_EXPERIMENT = "model-promotions"


class PromotionPolicy(BaseModel):
    """The gate: promote when the challenger beats the champion by more than `margin` on `metric`."""

    metric: str = "roc_auc"  # any test metric; brier counts lower as better
    margin: float = Field(0.0, ge=0.0)  # the challenger must beat production by more than this
    # Fewest test rows, unseen by both models, that a comparison needs; with fewer, nothing is promoted.
    min_rows: int = Field(50, ge=1)  # test rows neither model was trained on, at the least
    # Re-scoring rounds when another run moves `production` while this one is scoring.
    max_attempts: int = Field(3, ge=1)  # re-reads of production when another run moved it meanwhile

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in KNOWN_METRICS:
            raise ValueError(f"unknown promotion metric {value!r} (known: {', '.join(KNOWN_METRICS)})")
        return value


class PromotionDecision(BaseModel):
    decision: Literal["promoted", "not_promoted"]
    reason: str
    metric: str
    margin: float
    challenger_version: str
    challenger: Optional[float] = None  # on the rows compared; None when there was no comparison
    champion_version: Optional[str] = None
    champion: Optional[float] = None
    rows_compared: int = 0  # test rows neither model was trained on, where both were scored
    rows_left_out: int = 0  # test rows one of the two models was trained on
    production_version: Optional[str] = None  # after the decision
    staging_version: Optional[str] = None

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def as_tags(self) -> Dict[str, str]:
        values = {"decision": self.decision, "reason": self.reason, "metric": self.metric, "margin": self.margin,
                  "challenger": self.challenger, "champion": self.champion, "champion_version": self.champion_version,
                  "rows_compared": self.rows_compared, "rows_left_out": self.rows_left_out}
        return {f"promotion.{key}": str(value)[:5000] for key, value in values.items() if value is not None}


class NotComparable(Exception):
    """The champion cannot be scored on the current test split (e.g. it needs columns the data no longer has, or
    does not record which rows it was trained on)."""


class ManualPromotion(BaseModel):
    name: str
    version: str
    alias: str
    previous_version: Optional[str]
    reason: str
    user: str
    at: str
    audit_run_id: str


def improvement(challenger: float, champion: float, metric: str) -> float:
    """How much better the challenger is (positive = better), whichever direction the metric runs."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def decide(challenger: float, champion: Optional[float], champion_version: Optional[str],
           policy: PromotionPolicy) -> Tuple[bool, str]:
    """The gate's rule alone: (promote?, why)."""
    metric = policy.metric
    if champion is None:
        return True, "no production model yet: the first complete version becomes production"
    gain = improvement(challenger, champion, metric)
    comparison = (f"challenger {metric}={challenger:.4f} vs champion v{champion_version} {metric}={champion:.4f} "
                  f"(difference {gain:+.4f}, margin {policy.margin})")
    if gain > policy.margin:
        return True, f"{comparison}: beats the champion by more than the margin"
    return False, f"{comparison}: does not beat the champion by more than the margin"


def score_version(name: str, version: ModelVersion, rows: pd.DataFrame, dataset: DatasetSpec, metric: str) -> float:
    """The registered model's `metric` on `rows`, at the model's own decision threshold."""
    model = load_probability_model(f"models:/{name}/{version_id(version)}")
    X, y = features_and_target(rows, dataset)
    missing = [column for column in input_columns(model) if column not in X.columns]
    if missing:
        raise NotComparable(f"version {version_id(version)} needs columns the current test split lacks: {missing}")
    proba = positive_probability(model, X)
    return classification_metrics(y, proba, decision_threshold(version))[metric]


def trained_on(test_hashes: np.ndarray, version: ModelVersion) -> np.ndarray:
    """Which test rows (by their content hashes) `version` was trained on, from the hashes it records."""
    hashes = training_row_hashes(version)
    if hashes is None:
        raise NotComparable(f"version {version_id(version)} does not record its training rows (registered "
                            f"before row hashes were kept), so unseen rows cannot be told apart")
    # A hash table (pandas), not np.isin's sort: 2M test rows against 8M training hashes, 10.1 s to 0.8 s.
    return pd.Series(test_hashes).isin(hashes).to_numpy()


# How the registry's database words a second insert of the same alias (SQLite, PostgreSQL, MySQL/MariaDB), as
# MLflow passes it on, through its REST server too.
_DUPLICATE_KEY = ("IntegrityError", "UniqueViolation", "UNIQUE constraint failed", "duplicate key", "Duplicate entry")
# Attempts at an alias that other runs keep creating at the same moment: each lost race means another run won.
ALIAS_ATTEMPTS = 3


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> bool:
    """Point `alias` at `version`; False when another run created the alias at the same moment. MLflow's SQL store
    sets an alias with a read and then an insert or update, so two runs that both find it missing both insert, and
    the registry's unique key refuses the second: the caller reads the alias again and decides again."""
    try:
        client.set_registered_model_alias(name, alias, version)
        return True
    except MlflowException as error:
        if any(marker in str(error) for marker in _DUPLICATE_KEY):
            return False
        raise


def advance_staging(client: MlflowClient, name: str, version: str) -> str:
    """Point `staging` at `version` unless a newer complete version already holds it (concurrent runs)."""
    for _ in range(ALIAS_ATTEMPTS):
        current = version_by_alias(client, name, STAGING)
        if current is not None and int(current.version) >= int(version):
            return version_id(current)
        if set_alias(client, name, STAGING, version):
            return version
    return version_id(version_by_alias(client, name, STAGING))  # every attempt lost to another run: what it set


def run_gate(client: MlflowClient, name: str, challenger_version: str, test_set: pd.DataFrame,
             dataset: DatasetSpec, policy: PromotionPolicy) -> PromotionDecision:
    """Score challenger and champion on the test rows neither was trained on; move `production` if the challenger
    wins there by more than the margin. Fewer than `policy.min_rows` such rows: no promotion, and the decision says so.

    `production` is re-read just before it is moved; if another run moved it meanwhile, the new champion is
    scored and compared instead, so a concurrent run cannot be overwritten by a worse model.
    """
    challenger = complete_version(client, name, challenger_version)
    # Hashed and downloaded once; only the champion's rows are read again when production moves meanwhile.
    test_hashes = row_hashes(test_set, dataset.model_features)
    seen_by_challenger = trained_on(test_hashes, challenger)
    rows = test_set[~seen_by_challenger]
    champion, challenger_score, champion_score, promote = None, None, None, False
    reason = f"production moved {policy.max_attempts} times while scoring; left as it is"
    for _ in range(policy.max_attempts):
        champion = version_by_alias(client, name, PRODUCTION)
        if champion is not None and version_id(champion) == version_id(challenger):
            promote, reason = True, "already production (the step ran again)"
            break
        if champion is None:
            challenger_score = score_version(name, challenger, rows, dataset, policy.metric)
            promote, reason = decide(challenger_score, None, None, policy)
        else:
            try:
                rows = test_set[~(seen_by_challenger | trained_on(test_hashes, champion))]
                if len(rows) < policy.min_rows:
                    promote, challenger_score, champion_score = False, None, None
                    reason = (f"only {len(rows)} of {len(test_set)} test rows are unseen by both challenger "
                              f"v{version_id(challenger)} and champion v{version_id(champion)} (at least "
                              f"{policy.min_rows} needed, promotion.min_rows): not compared, not promoted; "
                              f"promote by hand after review if it should replace the champion")
                    break
                challenger_score = score_version(name, challenger, rows, dataset, policy.metric)
                champion_score = score_version(name, champion, rows, dataset, policy.metric)
            except NotComparable as exc:
                promote, reason, champion_score = False, f"champion cannot be compared on this data: {exc}", None
                break
            promote, reason = decide(challenger_score, champion_score, version_id(champion), policy)
            reason += f" on {len(rows)} test rows neither was trained on"
        if not promote:
            break
        now = version_by_alias(client, name, PRODUCTION)
        # Another run moved production while we scored (or set the first one at the same moment): compare against
        # the new champion.
        if version_id(now) != version_id(champion) or not set_alias(client, name, PRODUCTION, version_id(challenger)):
            promote = False
            continue
        break
    production = version_by_alias(client, name, PRODUCTION)
    staging = version_by_alias(client, name, STAGING)
    return PromotionDecision(
        decision="promoted" if promote else "not_promoted", reason=reason, metric=policy.metric,
        margin=policy.margin, challenger_version=version_id(challenger), challenger=challenger_score,
        champion_version=version_id(champion), champion=champion_score, rows_compared=len(rows),
        rows_left_out=len(test_set) - len(rows),
        production_version=version_id(production), staging_version=version_id(staging),
    )


def promote_manually(client: MlflowClient, name: str, version: str, alias: str, reason: str,
                     user: Optional[str] = None) -> ManualPromotion:
    """Move `alias` to a complete version by hand (also to roll back), recorded with who, when and why.

    The record is kept three times: tags on the version, an MLflow run in the `model-promotions` experiment
    (the audit trail, one run per promotion), and the ZenML model version's metadata (by the caller).
    """
    if alias not in (PRODUCTION, STAGING):
        raise InputError(f"--to {alias}: the aliases are {PRODUCTION!r} and {STAGING!r}")
    if not reason or not reason.strip():
        raise InputError("--reason: a manual promotion must say why (e.g. --reason 'reviewed by ...')")
    target = complete_version(client, name, version)
    previous = version_by_alias(client, name, alias)
    record = dict(name=name, version=version_id(target), alias=alias, previous_version=version_id(previous),
                  reason=reason.strip(), user=user or getpass.getuser(),
                  at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(AUDIT_EXPERIMENT)
    run = client.create_run(experiment_id, run_name=f"{name}-v{version_id(target)}-to-{alias}",
                            tags={"mlflow.user": record["user"], "promotion": "manual"})
    for key, value in record.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    if not set_alias(client, name, alias, record["version"]):  # created by another run meanwhile: now an update
        client.set_registered_model_alias(name, alias, record["version"])
    for key in ("reason", "user", "at", "previous_version"):
        client.set_model_version_tag(name, record["version"], f"manual_promotion.{alias}.{key}", str(record[key]))
    client.set_terminated(run.info.run_id)
    return ManualPromotion(**record, audit_run_id=run.info.run_id)
