import gc
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from xgboost import XGBClassifier

from heartml.core.modeling import (
    FAMILIES,
    TransformedFolds,
    assemble_model,
    cross_validate,
    fit_with_threads,
    make_estimator,
    make_soft_voting,
    soft_voting_cv,
    soft_voting_of,
    stratified_folds,
    with_threads,
)
from heartml.core.preprocessing import clean_frame, features_and_target


@pytest.fixture
def heart_xy(heart_raw, heart_spec):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    return features_and_target(cleaned, heart_spec)


@pytest.fixture
def features(default_features):
    return default_features


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_on_raw_records(heart_xy, features, family):
    X, y = heart_xy
    model = assemble_model(features, make_estimator(family, {}, seed=0))
    result = cross_validate(model, X, y, stratified_folds(y, 3, seed=0), "roc_auc")
    assert len(result.scores) == 3 and min(result.scores) > 0.85
    model.fit(X, y)
    proba = model.predict_proba(X.head(3))[:, 1]
    assert proba.shape == (3,) and ((0 <= proba) & (proba <= 1)).all()


def test_out_of_fold_probabilities_cover_every_row_once(heart_xy, features):
    X, y = heart_xy
    splits = stratified_folds(y, 4, seed=1)
    result = cross_validate(assemble_model(features, make_estimator("logistic_regression", {}, 0)), X, y, splits,
                            "roc_auc", n_jobs=2)
    oof, folds = np.array(result.oof_proba), np.array(result.folds)
    assert oof.shape == (len(y),) and set(folds) == {0, 1, 2, 3}
    for number, (_, test) in enumerate(splits):
        assert (folds[test] == number).all()
        # Each fold's score is the scorer on exactly that fold's out-of-fold predictions.
        assert result.scores[number] == pytest.approx(roc_auc_score(y.iloc[test], oof[test]))


class _CountingXGB(XGBClassifier):
    """XGBoost that counts its predict_proba calls (class-wide: the scorer sees a clone)."""

    calls = 0

    def predict_proba(self, X, **kwargs):
        type(self).calls += 1
        return super().predict_proba(X, **kwargs)


@pytest.mark.parametrize("scoring", ["roc_auc", "neg_log_loss", "accuracy", "average_precision"])
@pytest.mark.parametrize("family", FAMILIES)
def test_fold_scores_equal_scikit_learns_scorer_on_each_fold_with_one_prediction_of_its_test_rows(
        heart_xy, features, family, scoring):
    from sklearn.model_selection import cross_validate as sklearn_cross_validate

    X, y = heart_xy
    splits = stratified_folds(y, 3, seed=5)
    model = assemble_model(features, make_estimator(family, {}, seed=0))
    ours = cross_validate(model, X, y, splits, scoring)
    theirs = sklearn_cross_validate(model, X, y, cv=splits, scoring=scoring)
    assert ours.scores == theirs["test_score"].tolist()  # exactly: the same scorer on the same probabilities
    for train, test in splits:
        fitted = clone(model).fit(X.iloc[train], y.iloc[train])
        assert np.array_equal(np.array(ours.oof_proba)[test], fitted.predict_proba(X.iloc[test])[:, 1])
    if scoring in ("roc_auc", "neg_log_loss", "average_precision") and family == "xgboost":
        _CountingXGB.calls = 0
        counted = assemble_model(features, _CountingXGB(**make_estimator(family, {}, seed=0).get_params()))
        assert cross_validate(counted, X, y, splits, scoring) == ours
        assert _CountingXGB.calls == len(splits)  # scorer and out-of-fold probabilities: one call per fold


@pytest.mark.parametrize("family", [*FAMILIES, "soft_voting"])
def test_transforms_fitted_once_per_fold_score_as_refitting_the_whole_pipeline(heart_xy, features, family):
    X, y = heart_xy
    splits = stratified_folds(y, 4, seed=3)
    classifier = (make_soft_voting({f: {} for f in FAMILIES}, seed=0) if family == "soft_voting"
                  else make_estimator(family, {}, seed=0))
    refitted = cross_validate(assemble_model(features, classifier), X, y, splits, "roc_auc", n_jobs=2)
    folds = TransformedFolds.fit(features, X, y, splits)
    assert folds.cross_validate(classifier, "roc_auc", n_jobs=2) == refitted  # scores, probabilities, folds
    seen = []
    stopped = folds.cross_validate(classifier, "roc_auc", n_jobs=1, on_fold=lambda f, s: seen.append((f, len(s))))
    assert seen == [(0, 1), (1, 2), (2, 3)] and stopped == refitted
    assert folds.nbytes > X.shape[0] * 8  # the transformed matrices of every fold, both sides
    # The limit is checked against what the folds made so far project for all of them (known after the first).
    assert TransformedFolds.fit(features, X, y, splits, max_bytes=int(folds.nbytes * 1.05)) is not None
    assert TransformedFolds.fit(features, X, y, splits, max_bytes=folds.nbytes // 2) is None


def test_transformed_folds_live_in_read_only_mapped_files_removed_with_them(heart_xy, features):
    X, y = heart_xy
    folds = TransformedFolds.fit(features, X, y, stratified_folds(y, 3, seed=3))
    folder = Path(folds.files._folder.name)
    assert len(list(folder.glob("*.joblib"))) == 6  # both sides of 3 folds
    train = np.setdiff1d(np.arange(len(X)), folds.folds[0].test)
    in_memory = clone(features).fit_transform(X.iloc[train], y.iloc[train])
    mapped = folds.folds[0].X_train
    assert not any(mapped[column].to_numpy().flags.writeable for column in mapped)  # a file's pages, shared
    pd.testing.assert_frame_equal(pd.DataFrame(np.asarray(mapped)), pd.DataFrame(np.asarray(in_memory)))
    del folds, mapped
    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize("scoring", ["roc_auc", "accuracy", "neg_log_loss"])
def test_soft_voting_cross_validated_from_its_members_folds_equals_refitting_it(heart_xy, features, scoring):
    X, y = heart_xy
    folds = TransformedFolds.fit(features, X, y, stratified_folds(y, 4, seed=2))
    members = {"xgboost": {"n_estimators": 40}, "random_forest": {"n_estimators": 30}, "logistic_regression": {}}
    refitted = folds.cross_validate(make_soft_voting(members, seed=0), scoring, n_jobs=2)
    singles = [folds.cross_validate(make_estimator(f, p, seed=0), scoring, n_jobs=2) for f, p in members.items()]
    from_members = soft_voting_cv(singles, y, scoring)
    assert from_members.folds == refitted.folds
    assert np.allclose(from_members.oof_proba, refitted.oof_proba, rtol=0, atol=1e-12)
    assert from_members.scores == pytest.approx(refitted.scores, abs=1e-12)
    assert from_members.scores != singles[0].scores


def test_soft_voting_of_fitted_members_predicts_as_fitting_the_vote(heart_xy, features):
    X, y = heart_xy
    Xt = clone(features).fit_transform(X, y)
    members = {"logistic_regression": {"C": 0.5}, "random_forest": {"n_estimators": 50}}
    fitted = {f: make_estimator(f, p, seed=0).fit(Xt, y) for f, p in members.items()}
    voting = make_soft_voting(members, seed=0).fit(Xt, y)
    assert (soft_voting_of(fitted, Xt, y).predict_proba(Xt) == voting.predict_proba(Xt)).all()


def test_soft_voting_averages_its_members(heart_xy, features):
    X, y = heart_xy
    members = {"logistic_regression": {"C": 0.5}, "random_forest": {"n_estimators": 50}}
    voting = assemble_model(features, make_soft_voting(members, seed=0)).fit(X, y)
    singles = [assemble_model(features, make_estimator(f, p, seed=0)).fit(X, y) for f, p in members.items()]
    expected = np.mean([m.predict_proba(X.head(20))[:, 1] for m in singles], axis=0)
    assert np.allclose(voting.predict_proba(X.head(20))[:, 1], expected)


def test_the_lone_fold_of_a_batch_fits_xgboost_with_every_workers_threads_and_scores_the_same(heart_xy, features):
    X, y = heart_xy
    members = {"xgboost": {"n_estimators": 40}, "random_forest": {"n_estimators": 30}, "logistic_regression": {}}
    voting = assemble_model(features, make_soft_voting(members, seed=0))
    threaded = with_threads(voting, 2)
    assert threaded.get_params()["classifier__xgboost__n_jobs"] == 2
    assert threaded.get_params()["classifier__random_forest__n_jobs"] == 1  # its threaded sums vary by 1e-16
    assert voting.get_params()["classifier__xgboost__n_jobs"] == 1  # a copy: the model itself is unchanged
    assert with_threads(make_estimator("logistic_regression", {}, 0), 2).get_params() == \
        make_estimator("logistic_regression", {}, 0).get_params()  # nothing to thread
    splits = stratified_folds(y, 3, seed=4)  # on 2 workers: folds 0 and 1 in the workers, fold 2 alone here
    seen = []
    batched = cross_validate(voting, X, y, splits, "roc_auc", n_jobs=2, on_fold=lambda f, s: seen.append(f))
    assert batched == cross_validate(voting, X, y, splits, "roc_auc", n_jobs=1) and seen == [0, 1]


def test_a_final_fit_gives_xgboost_every_thread_and_predicts_single_threaded_as_a_plain_fit(heart_xy, features):
    X, y = heart_xy
    X_fit = clone(features).fit_transform(X, y)
    threads_at_fit = []

    class Recorded(XGBClassifier):
        def fit(self, X, y, **kwargs):
            threads_at_fit.append(self.n_jobs)
            return super().fit(X, y, **kwargs)

    plain = make_estimator("xgboost", {"n_estimators": 40}, seed=3).fit(X_fit, y)
    unfitted = Recorded(**make_estimator("xgboost", {"n_estimators": 40}, seed=3).get_params())
    threaded = fit_with_threads(unfitted, X_fit, y, threads=2)
    assert threads_at_fit == [2] and unfitted.n_jobs == 1  # fitted on a copy with 2 threads
    assert threaded.n_jobs == 1 and json.loads(threaded.get_booster().save_config())["learner"]["generic_param"][
        "nthread"] == "1"  # the booster predicts on one thread again
    assert threaded.get_booster().get_dump() == plain.get_booster().get_dump()
    assert (threaded.predict_proba(X_fit) == plain.predict_proba(X_fit)).all()
    lr = make_estimator("logistic_regression", {}, seed=3)
    assert fit_with_threads(lr, X_fit, y, threads=2).get_params() == lr.get_params()


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        make_estimator("svm", {}, seed=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim; elsewhere it does nothing")
def test_release_freed_heap_gives_freed_heap_pages_back_to_the_system():
    import psutil

    from heartml.core.modeling import release_freed_heap

    process = psutil.Process()
    blocks = [np.ones(8_000) for _ in range(2_000)]  # 64 KB each, under glibc's mmap threshold: on the heap
    pin = np.ones(8_000)  # allocated last: the heap's top stays in use, so freeing the rest cannot shrink it
    allocated = 2_000 * 64_000
    before = process.memory_info().rss
    del blocks
    kept = process.memory_info().rss
    assert before - kept < allocated / 2  # free() alone keeps the pages in the process
    release_freed_heap()
    assert before - process.memory_info().rss > allocated * 0.8
    del pin
