"""The champion/challenger gate and manual promotion on a real MLflow SQLite registry."""

import sqlite3
from contextlib import contextmanager

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

import heartml.registry.promotion as promotion
from heartml.core.errors import InputError
from heartml.core.evaluation import classification_metrics
from heartml.core.preprocessing import features_and_target
from heartml.core.versioning import row_hashes
from heartml.registry.model_versions import (
    COMPLETE,
    PRODUCTION,
    STAGING,
    STATUS_TAG,
    TRAINING_ROWS_TAG,
    RegistryError,
    mark_complete,
    register_model_version,
    version_by_alias,
)
from heartml.registry.promotion import PromotionPolicy, advance_staging, decide, promote_manually, run_gate


@pytest.fixture(scope="module")
def sources(mlflow_store, strong_and_weak_models, heart_splits, heart_spec):
    """One logged strong and one logged weak model; tests register them under their own model names."""
    _, test = heart_splits
    example = features_and_target(test, heart_spec)[0].head(5)
    uris = {}
    for label, model in zip(("strong", "weak"), strong_and_weak_models):
        with mlflow.start_run():
            source = register_model_version(model, heart_spec, example, f"unit_source_{label}", {},
                                            training_rows=row_hashes(heart_splits[0], heart_spec.model_features))
            uris[label] = f"runs:/{source.run_id}/model"  # versions registered from it keep the run (and its rows)
    return uris


def register(sources, kind: str, name: str, complete: bool = True) -> str:
    tags = {STATUS_TAG: "pending", TRAINING_ROWS_TAG: "734"}  # the source run holds the training rows
    version = str(mlflow.register_model(sources[kind], name, tags=tags).version)
    if complete:
        mark_complete(MlflowClient(), name, version)
    return version


def alias_version(name: str, alias: str):
    found = version_by_alias(MlflowClient(), name, alias)
    return None if found is None else str(found.version)


@pytest.mark.parametrize(
    "challenger, champion, metric, margin, promoted",
    [
        (0.80, None, "roc_auc", 0.005, True),     # the first model becomes production
        (0.930, 0.920, "roc_auc", 0.005, True),   # better by more than the margin
        (0.924, 0.920, "roc_auc", 0.005, False),  # better, but not by more than the margin
        (0.920, 0.920, "roc_auc", 0.0, False),    # a tie never replaces the champion
        (0.10, 0.12, "brier", 0.005, True),       # lower Brier score is better
        (0.14, 0.12, "brier", 0.0, False),
    ],
)
def test_decide(challenger, champion, metric, margin, promoted):
    decision, reason = decide(challenger, champion, "7", PromotionPolicy(metric=metric, margin=margin))
    assert decision is promoted
    if champion is not None:
        assert f"champion v7 {metric}={champion:.4f}" in reason and f"margin {margin}" in reason


def test_policy_rejects_unknown_metric_and_negative_margin():
    with pytest.raises(ValidationError, match="unknown promotion metric 'auc'"):
        PromotionPolicy(metric="auc")
    with pytest.raises(ValidationError):
        PromotionPolicy(margin=-0.1)


def test_first_model_is_promoted_and_a_weak_one_never(sources, heart_splits, heart_spec, strong_and_weak_models):
    _, test = heart_splits
    client, name, policy = MlflowClient(), "unit_gate", PromotionPolicy(metric="roc_auc", margin=0.005)
    first = register(sources, "strong", name)
    advance_staging(client, name, first)
    decision = run_gate(client, name, first, test, heart_spec, policy)
    assert decision.promoted and decision.champion is None and "first complete version" in decision.reason
    assert alias_version(name, PRODUCTION) == first

    weak = register(sources, "weak", name)
    advance_staging(client, name, weak)
    decision = run_gate(client, name, weak, test, heart_spec, policy)
    X, y = features_and_target(test, heart_spec)
    strong_model, weak_model = strong_and_weak_models
    expected_champion = classification_metrics(y, strong_model.predict_proba(X)[:, 1])["roc_auc"]
    expected_challenger = classification_metrics(y, weak_model.predict_proba(X)[:, 1])["roc_auc"]
    assert decision.decision == "not_promoted"
    assert decision.champion_version == first and decision.challenger_version == weak
    assert decision.champion == pytest.approx(expected_champion)
    assert decision.challenger == pytest.approx(expected_challenger)
    assert decision.challenger < decision.champion - 0.05
    assert alias_version(name, PRODUCTION) == first
    assert (decision.production_version, decision.staging_version) == (first, weak)


def test_incomplete_challenger_is_refused(sources, heart_splits, heart_spec):
    _, test = heart_splits
    name = "unit_incomplete"
    pending = register(sources, "strong", name, complete=False)
    with pytest.raises(RegistryError, match="registration did not complete"):
        run_gate(MlflowClient(), name, pending, test, heart_spec, PromotionPolicy())
    assert alias_version(name, PRODUCTION) is None


def test_gate_rescores_when_production_moves_meanwhile(sources, heart_splits, heart_spec, monkeypatch):
    """Another run promotes a better model while this one scores: the new champion is the one compared."""
    _, test = heart_splits
    client, name = MlflowClient(), "unit_race"
    old_champion = register(sources, "weak", name)
    client.set_registered_model_alias(name, PRODUCTION, old_champion)
    concurrent = register(sources, "strong", name)
    challenger = register(sources, "strong", name)
    real_score, scored = promotion.score_version, []

    def score_and_race(model_name, version, *args):
        scored.append(str(version.version))
        if str(version.version) == old_champion:  # the other run finishes right now
            client.set_registered_model_alias(name, PRODUCTION, concurrent)
        return real_score(model_name, version, *args)

    monkeypatch.setattr(promotion, "score_version", score_and_race)
    decision = run_gate(client, name, challenger, test, heart_spec, PromotionPolicy(margin=0.0))
    assert scored == [challenger, old_champion, challenger, concurrent]  # each pair on its own unseen rows
    assert decision.decision == "not_promoted" and decision.champion_version == concurrent  # a tie: not promoted
    assert alias_version(name, PRODUCTION) == concurrent


def test_staging_never_moves_back_to_an_older_version(sources):
    client, name = MlflowClient(), "unit_staging"
    older, newer = register(sources, "weak", name), register(sources, "weak", name)
    assert advance_staging(client, name, newer) == newer
    assert advance_staging(client, name, older) == newer  # a slower, older run finishing last
    assert alias_version(name, STAGING) == newer


@contextmanager
def another_run_creates_it_first(store_uri: str, name: str, alias: str, version: str):
    """The race of two runs that both found `alias` missing, for real: just before this process inserts it, another
    connection to the registry's database inserts it for `version` and commits, so this insert breaks the unique key.
    Yields the list of versions the other run set (one at most)."""
    from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias
    from sqlalchemy import event

    inserted = []

    def insert_first(mapper, connection, target):
        if (target.name, target.alias) == (name, alias) and not inserted:
            with sqlite3.connect(store_uri.removeprefix("sqlite:///")) as other:
                other.execute("INSERT INTO registered_model_aliases (workspace, name, alias, version) "
                              "VALUES (?, ?, ?, ?)", (target.workspace, name, alias, int(version)))
            inserted.append(version)

    event.listen(SqlRegisteredModelAlias, "before_insert", insert_first)
    try:
        yield inserted
    finally:
        event.remove(SqlRegisteredModelAlias, "before_insert", insert_first)


@pytest.mark.parametrize("ours_is_newer", [False, True])
def test_staging_created_by_another_run_at_the_same_moment_ends_on_the_newer_version(sources, mlflow_store,
                                                                                     ours_is_newer):
    client, name = MlflowClient(), f"unit_staging_race_{ours_is_newer}"
    older, newer = register(sources, "weak", name), register(sources, "weak", name)
    ours, theirs = (newer, older) if ours_is_newer else (older, newer)
    with another_run_creates_it_first(mlflow_store, name, STAGING, theirs) as inserted:
        assert advance_staging(client, name, ours) == newer
    assert inserted == [theirs] and alias_version(name, STAGING) == newer


def test_gate_compares_with_a_first_production_set_by_another_run_at_the_same_moment(sources, mlflow_store,
                                                                                    heart_splits, heart_spec):
    _, test = heart_splits
    client, name = MlflowClient(), "unit_production_race"
    theirs, ours = register(sources, "weak", name), register(sources, "strong", name)
    with another_run_creates_it_first(mlflow_store, name, PRODUCTION, theirs) as inserted:
        decision = run_gate(client, name, ours, test, heart_spec, PromotionPolicy(margin=0.005))
    assert inserted == [theirs]
    assert decision.champion_version == theirs and decision.champion is not None  # scored against it, then won
    assert decision.promoted and alias_version(name, PRODUCTION) == ours


def test_manual_promotion_is_recorded_with_its_reason(sources):
    client, name = MlflowClient(), "unit_manual"
    first, second = register(sources, "strong", name), register(sources, "weak", name)
    client.set_registered_model_alias(name, PRODUCTION, first)
    record = promote_manually(client, name, second, PRODUCTION, "  rollback test, ticket 7 ", user="alice")
    assert alias_version(name, PRODUCTION) == second
    assert (record.previous_version, record.reason, record.user) == (first, "rollback test, ticket 7", "alice")
    tags = client.get_model_version(name, second).tags
    assert tags["manual_promotion.production.reason"] == "rollback test, ticket 7"
    assert tags["manual_promotion.production.previous_version"] == first
    assert tags[STATUS_TAG] == COMPLETE
    audit = client.get_run(record.audit_run_id)
    assert audit.data.params["reason"] == "rollback test, ticket 7" and audit.data.params["version"] == second
    assert audit.info.status == "FINISHED"


def test_manual_promotion_refuses_incomplete_versions_and_empty_reasons(sources):
    client, name = MlflowClient(), "unit_manual_refusals"
    pending = register(sources, "strong", name, complete=False)
    with pytest.raises(RegistryError, match="registration did not complete"):
        promote_manually(client, name, pending, PRODUCTION, "because")
    with pytest.raises(InputError, match="must say why"):
        promote_manually(client, name, pending, PRODUCTION, "   ")
    assert alias_version(name, PRODUCTION) is None


def test_champion_and_challenger_are_compared_only_on_rows_neither_trained_on(sources, heart_splits, heart_spec,
                                                                               strong_and_weak_models):
    """A test split that holds 150 of the champion's training rows: they are left out, the rest compared; too
    few left means no promotion, and the decision says why."""
    train, test = heart_splits
    mixed = pd.concat([train.head(150), test.head(40)], ignore_index=True)
    client, name = MlflowClient(), "unit_unseen"
    champion = register(sources, "weak", name)
    client.set_registered_model_alias(name, PRODUCTION, champion)
    challenger = register(sources, "strong", name)

    refused = run_gate(client, name, challenger, mixed, heart_spec, PromotionPolicy(min_rows=50))
    assert refused.decision == "not_promoted" and (refused.rows_compared, refused.rows_left_out) == (40, 150)
    assert "only 40 of 190 test rows are unseen by both" in refused.reason and refused.challenger is None
    assert alias_version(name, PRODUCTION) == champion

    decision = run_gate(client, name, challenger, mixed, heart_spec, PromotionPolicy(min_rows=30))
    X, y = features_and_target(test.head(40), heart_spec)
    strong, weak = strong_and_weak_models
    assert decision.rows_compared == 40 and "on 40 test rows neither was trained on" in decision.reason
    assert decision.champion == pytest.approx(classification_metrics(y, weak.predict_proba(X)[:, 1])["roc_auc"])
    assert decision.challenger == pytest.approx(classification_metrics(y, strong.predict_proba(X)[:, 1])["roc_auc"])
    assert decision.promoted and alias_version(name, PRODUCTION) == challenger


def test_the_test_rows_a_version_was_trained_on_are_found_by_their_hashes(monkeypatch):
    rng = np.random.default_rng(0)
    training = rng.integers(0, 2**63, 50_000, dtype=np.uint64)
    test = np.concatenate([training[::7], rng.integers(0, 2**63, 20_000, dtype=np.uint64), training[:3]])
    monkeypatch.setattr(promotion, "training_row_hashes", lambda version: training)
    found = promotion.trained_on(test, version=None)
    assert found.dtype == bool and found.sum() == len(training[::7]) + 3
    assert found.tolist() == np.isin(test, training).tolist()
