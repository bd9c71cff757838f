import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from heartml.evaluation import classification_metrics
from heartml.features import FeatureOptions, build_feature_pipeline
from heartml.modeling import FAMILIES, assemble_model, cross_validate, make_estimator
from heartml.preprocessing import PreprocessingOptions, build_preprocessor, clean_frame, features_and_target


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_on_raw_records(heart_raw, heart_spec, family):
    cleaned, _ = clean_frame(heart_raw, heart_spec)
    X, y = features_and_target(cleaned, heart_spec)
    features = build_feature_pipeline(build_preprocessor(PreprocessingOptions()), FeatureOptions())
    model = assemble_model(features, make_estimator(family, {}, seed=0))
    scores = cross_validate(model, X, y, folds=3, scoring="roc_auc", seed=0)
    assert scores.shape == (3,) and scores.min() > 0.85
    model.fit(X, y)
    proba = model.predict_proba(X.head(3))[:, 1]
    assert proba.shape == (3,) and ((0 <= proba) & (proba <= 1)).all()


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        make_estimator("svm", {}, seed=0)


def test_metrics_match_sklearn_on_a_known_example():
    y = np.array([0, 0, 1, 1, 1, 0])
    proba = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    metrics = classification_metrics(y, proba)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(f1_score(y, proba >= 0.5))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, proba)) == pytest.approx(8 / 9)
