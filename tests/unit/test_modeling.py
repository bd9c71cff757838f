import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heartml.core.modeling import (
    FAMILIES,
    TransformedFolds,
    assemble_model,
    cross_validate,
    make_estimator,
    make_soft_voting,
    stratified_folds,
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


def test_soft_voting_averages_its_members(heart_xy, features):
    X, y = heart_xy
    members = {"logistic_regression": {"C": 0.5}, "random_forest": {"n_estimators": 50}}
    voting = assemble_model(features, make_soft_voting(members, seed=0)).fit(X, y)
    singles = [assemble_model(features, make_estimator(f, p, seed=0)).fit(X, y) for f, p in members.items()]
    expected = np.mean([m.predict_proba(X.head(20))[:, 1] for m in singles], axis=0)
    assert np.allclose(voting.predict_proba(X.head(20))[:, 1], expected)


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        make_estimator("svm", {}, seed=0)
