"""The model card: age bands, subgroup metrics against scikit-learn, calibration summary, the assembled card and its
script-free page."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from heartml.core.dataset import AcceptanceLimits
from heartml.core.evaluation import BootstrapOptions, ThresholdRule, evaluate_model
from heartml.core.explain import Contribution, FeatureImportance, LimeExplanations, PatientExplanation
from heartml.core.preprocessing import features_and_target
from heartml.core.transforms import AgeBands, assign_bands, band_labels
from heartml.core.versioning import DataVersion, frame_fingerprint
from heartml.registry.model_versions import RegisteredVersion
from heartml.registry.promotion import PromotionDecision
from heartml.reports.model_card import (
    IntendedUse,
    ModelCardOptions,
    build_model_card,
    calibration_summary,
    decision_curve,
    fairness_checks,
    subgroup_metrics,
)


def test_subgroup_bands_are_the_age_band_feature_s_bands():
    """One labeller for both: the model card's subgroups read like the age_band feature, each band [low, high)."""
    ages = pd.Series([28, 49.9, 50, 55, 60, 60.5, 77, np.nan])
    assert band_labels([50, 60]) == ["under 50", "50-60", "60+"]
    assert assign_bands(ages, [50, 60]).tolist() == ["under 50", "under 50", "50-60", "50-60", "60+", "60+", "60+",
                                                     None]
    assert assign_bands(pd.Series([40, 50, 60, 61]), [40, 50, 60]).tolist() == ["40-50", "50-60", "60+", "60+"]
    assert assign_bands(pd.Series([39, 40]), [40]).tolist() == ["under 40", "40+"]
    assert AgeBands("Age", edges=[50, 60]).fit(pd.DataFrame({"Age": ages})).labels_ == band_labels([50, 60])


def test_band_edges_must_increase():
    with pytest.raises(ValueError, match="bands.age"):
        ModelCardOptions(bands={"age": [60, 50]})


def _groups(X):
    return {"sex": X["Sex"].astype(object), "age": assign_bands(X["Age"], [50, 60])}


def test_subgroup_metrics_equal_sklearn_per_group_and_counts_add_up(heart_split, strong_and_weak_models):
    _, (X_test, y_test) = heart_split
    proba = strong_and_weak_models[0].predict_proba(X_test)[:, 1]
    options = ModelCardOptions(bootstrap=BootstrapOptions(resamples=200))
    rows = subgroup_metrics(y_test, proba, _groups(X_test), {"sex": "Sex", "age": "Age"},
                            {"sex": ["M", "F"], "age": band_labels([50, 60])}, 0.5, options)
    assert [(r.attribute, r.group) for r in rows] == [("sex", "M"), ("sex", "F"), ("age", "under 50"),
                                                      ("age", "50-60"), ("age", "60+")]
    for attribute in ("sex", "age"):
        assert sum(r.rows for r in rows if r.attribute == attribute) == len(y_test)
        assert sum(r.positives for r in rows if r.attribute == attribute) == int(y_test.sum())
    female = next(r for r in rows if r.group == "F")
    mask = (X_test["Sex"] == "F").to_numpy()
    y, p = y_test.to_numpy()[mask], proba[mask]
    assert (female.rows, female.positives) == (mask.sum(), y.sum())
    assert female.roc_auc.value == pytest.approx(roc_auc_score(y, p))
    assert female.roc_auc.low <= female.roc_auc.value <= female.roc_auc.high
    assert female.sensitivity == pytest.approx(((p >= 0.5) & (y == 1)).sum() / (y == 1).sum())
    assert female.specificity == pytest.approx(((p < 0.5) & (y == 0)).sum() / (y == 0).sum())
    assert female.brier == pytest.approx(np.mean((p - y) ** 2))


def test_small_and_single_outcome_groups_get_counts_and_a_note_instead_of_metrics():
    y = pd.Series([1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    proba = np.linspace(0.1, 0.9, len(y))
    groups = {"sex": pd.Series(["F"] * 3 + ["M"] * 10)}
    options = ModelCardOptions(min_group_rows=5, bootstrap=BootstrapOptions(resamples=50))
    small, rest = subgroup_metrics(y, proba, groups, {"sex": "Sex"}, {"sex": ["F", "M"]}, 0.5, options)
    assert (small.rows, small.positives, small.roc_auc, small.brier) == (3, 3, None, None)
    assert "fewer than 5" in small.note
    assert rest.roc_auc is not None and rest.note == ""
    only_positive = subgroup_metrics(pd.Series([1] * 6), np.full(6, 0.8), {"sex": pd.Series(["M"] * 6)},
                                     {"sex": "Sex"}, {"sex": ["M"]}, 0.5, options)[0]
    assert only_positive.roc_auc is None and only_positive.brier == pytest.approx(0.04)
    assert "one outcome only" in only_positive.note


def test_calibration_summary_tells_calibrated_from_overconfident_probabilities():
    from heartml.core.evaluation import Estimate

    rng = np.random.default_rng(7)
    proba = rng.uniform(0.02, 0.98, 20000)
    y = (rng.random(len(proba)) < proba).astype(int)
    brier = Estimate(value=0.2, low=0.19, high=0.21)
    calibrated = calibration_summary(y, proba, brier, bins=5)
    assert calibrated.slope == pytest.approx(1, abs=0.06) and calibrated.intercept == pytest.approx(0, abs=0.06)
    assert calibrated.expected_calibration_error < 0.02
    assert sum(b.rows for b in calibrated.bins) == len(y) and len(calibrated.bins) == 5
    assert calibrated.mean_predicted == pytest.approx(proba.mean())
    logit = np.log(proba / (1 - proba))
    overconfident = calibration_summary(y, 1 / (1 + np.exp(-3 * logit)), brier, bins=5)
    assert overconfident.slope == pytest.approx(1 / 3, abs=0.03)
    assert overconfident.expected_calibration_error > 0.05


@pytest.fixture(scope="module")
def card_inputs(heart_splits, heart_spec, strong_and_weak_models):
    train, test = heart_splits
    model = strong_and_weak_models[0]
    X_test, y_test = features_and_target(test, heart_spec)
    X_train, y_train = features_and_target(train, heart_spec)
    comparison = pd.DataFrame({"family": ["logistic_regression"], "scoring": ["roc_auc"], "cv_mean": [0.92],
                               "train_score": [0.93]})
    oof = pd.DataFrame({"y_true": y_train.to_numpy(), "logistic_regression": model.predict_proba(X_train)[:, 1]})
    report, _ = evaluate_model(model, "logistic_regression", X_test, y_test, comparison, oof,
                               BootstrapOptions(resamples=200), ThresholdRule(value=0.4), AcceptanceLimits())
    patients = [PatientExplanation(patient=0, record={"Age": 61.0}, probability=0.7, intercept=0.4,
                                   local_prediction=0.7, local_r2=0.5,
                                   contributions=[Contribution(feature="ST_Slope", condition="ST_Slope=Flat",
                                                               weight=0.21)])]
    importance = [FeatureImportance(feature=f"f{i}", mean_abs_weight=1 / (i + 1), mean_weight=(-1) ** i / (i + 1),
                                    patients_in_top=1) for i in range(12)]
    explanations = LimeExplanations(model="LogisticRegression", positive_class="HeartDisease", feature_names=[],
                                    categorical_features=[], num_samples=100, num_features=10, seed=1, n_jobs=1,
                                    seconds=0.1, patients=patients, global_importance=importance)
    data = DataVersion(data_hash=frame_fingerprint(test), source="bundled://heart", dataset="heart", rows=918,
                       columns=12)
    registered = RegisteredVersion(name="heart_failure_classifier", version="4", model_uri="models:/x/4",
                                   run_id="abc123", tracking_uri="sqlite://", decision_threshold=0.4)
    promotion = PromotionDecision(decision="not_promoted", reason="challenger roc_auc=0.9 vs champion v3 <b>",
                                  metric="roc_auc", margin=0.005, challenger_version="4", challenger=0.9,
                                  champion_version="3", champion=0.93, production_version="3", staging_version="4")
    tags = {"training_date": "2026-11-26T06:00:00+00:00", "git_commit": "0123456789abcdef0123-dirty",
            "zenml_pipeline_run_name": "training_1", "zenml_pipeline_run_id": "run-id",
            "zenml_model_name": "heart_failure_classifier", "zenml_model_version": "7"}
    return dict(model=model, test_set=test, dataset=heart_spec, data_version=data, evaluation=report,
                explanations=explanations, registered=registered, promotion=promotion, version_tags=tags)


def test_card_gathers_provenance_threshold_subgroups_and_top_features(card_inputs):
    use = IntendedUse(use_cases="ranking patients for work-up", limitations="historical cohorts")
    card = build_model_card(**card_inputs, intended_use=use,
                            options=ModelCardOptions(top_features=5, bootstrap=BootstrapOptions(resamples=100)))
    test = card_inputs["test_set"]
    source = card.provenance
    assert (source.version, source.training_date, source.git_commit) == (
        "4", "2026-11-26T06:00:00+00:00", "0123456789abcdef0123-dirty")
    assert (source.zenml_model_version, source.pipeline_run, source.estimator) == ("7", "training_1",
                                                                                   "LogisticRegression")
    assert source.data.data_hash == frame_fingerprint(test) and source.test_rows == len(test)
    assert card.metrics == card_inputs["evaluation"].metrics
    # Sensitivity and specificity at the registered threshold (0.4), not at 0.5.
    y = test["HeartDisease"].to_numpy()
    flagged = card_inputs["model"].predict_proba(test.drop(columns=["HeartDisease"]))[:, 1] >= 0.4
    assert card.threshold.threshold == 0.4
    assert card.threshold.test_sensitivity == pytest.approx((flagged & (y == 1)).sum() / (y == 1).sum())
    assert card.threshold.test_specificity == pytest.approx((~flagged & (y == 0)).sum() / (y == 0).sum())
    assert [p.name for p in card.threshold.operating_points] == ["registered", "default", "screening"]
    assert {(g.attribute, g.group) for g in card.subgroups} == {("sex", "M"), ("sex", "F"), ("age", "under 50"),
                                                                ("age", "50-60"), ("age", "60+")}
    assert sum(g.rows for g in card.subgroups if g.attribute == "age") == len(test)
    assert [f.feature for f in card.global_importance] == ["f0", "f1", "f2", "f3", "f4"]
    assert card.promotion.decision == "not_promoted" and card.intended_use.use_cases == use.use_cases
    description = card.description("runs:/abc123/model_card/model_card.html")
    assert "runs:/abc123/model_card/model_card.html" in description and "not promoted" in description
    assert "commit 0123456789ab on data" in description


def test_model_card_materializer_round_trips_and_renders_a_static_page(card_inputs, artifact_store, tmp_path):
    from materializers import ModelCardMaterializer
    from tests.html_page import read_page
    from tests.unit.test_materializers import assert_static, html_of, materialize

    card = build_model_card(**card_inputs, intended_use=IntendedUse(use_cases="ranking patients"),
                            options=ModelCardOptions(bootstrap=BootstrapOptions(resamples=50)))
    materializer, visualizations = materialize(ModelCardMaterializer, card, artifact_store,
                                               str(tmp_path / "store" / "card"))
    assert materializer.load(type(card)) == card
    page = html_of(visualizations)
    assert_static(page)
    assert "Model card: heart_failure_classifier version 4" in page and "ranking patients" in page
    assert "not stated (model: in the run configuration)" in page  # limitations were not given
    assert "vs champion v3 &lt;b&gt;" in page  # text is escaped, never markup
    female = next(g for g in card.subgroups if g.group == "F")
    rows = read_page(page).rows()
    assert ["sex", "F", str(female.rows), str(female.positives)] in [cells[:4] for cells in rows]
    assert "50-60" in [cells[1] for cells in rows if len(cells) > 1] and "0123456789abcdef0123-dirty" in page
    assert materializer.extract_metadata(card)["subgroup_rows"]["sex=F"] == female.rows


def test_decision_curve_net_benefit_against_treat_all_and_none():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    proba = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1])
    points = {round(p.threshold, 2): p for p in decision_curve(y, proba, [0.1, 0.5], registered=0.25)}
    assert sorted(points) == [0.1, 0.25, 0.5] and points[0.25].registered and not points[0.5].registered
    # At 0.5 the model flags 3 patients: 2 true, 1 false; odds 1.
    assert points[0.5].model == pytest.approx(2 / 10 - 1 / 10)
    assert points[0.5].treat_all == pytest.approx(0.3 - 0.7) and points[0.5].treat_none == 0
    # At 0.25: flags 0.9, 0.8, 0.3, 0.6 -> 3 true, 1 false; odds 1/3.
    assert points[0.25].model == pytest.approx(3 / 10 - 1 / 10 / 3)
    assert points[0.1].treat_all == pytest.approx(0.3 - 0.7 / 9)


def test_fairness_warns_when_equalized_odds_differ_beyond_the_limit():
    """Same outcomes in both groups; the model catches every case among men and half of them among women."""
    sex = pd.Series(["M"] * 20 + ["F"] * 20)
    y = pd.Series([1] * 10 + [0] * 10 + [1] * 10 + [0] * 10)
    proba = np.array([0.9] * 10 + [0.1] * 10 + [0.9] * 5 + [0.1] * 5 + [0.1] * 10)
    options = ModelCardOptions(min_group_rows=10, max_equalized_odds_difference=0.2,
                               bootstrap=BootstrapOptions(resamples=50))
    groups = {"sex": sex}
    rows = subgroup_metrics(y, proba, groups, {"sex": "Sex"}, {"sex": ["M", "F"]}, 0.5, options)
    assert [(g.group, g.sensitivity, g.specificity) for g in rows] == [("M", 1.0, 1.0), ("F", 0.5, 1.0)]
    check, = fairness_checks(y, proba, groups, 0.5, rows, options)
    assert check.groups == ["M", "F"] and check.equalized_odds_difference == pytest.approx(0.5)
    assert check.warning.startswith("sex: equalized-odds difference 0.50 across M, F exceeds 0.2")
    relaxed = ModelCardOptions(min_group_rows=10, max_equalized_odds_difference=0.6)
    assert fairness_checks(y, proba, groups, 0.5, rows, relaxed)[0].warning == ""


def test_rates_and_equalized_odds_from_confusion_counts_equal_fairlearn_on_every_patient():
    """The card gives fairlearn each (group, outcome, flag) once, weighted by its patients: same values as fairlearn
    on the patients themselves, with unknown groups left out and a group excluded from the fairness check."""
    from fairlearn.metrics import MetricFrame, equalized_odds_difference, true_negative_rate, true_positive_rate

    rng = np.random.default_rng(3)
    n = 3000
    proba = rng.random(n)
    y = pd.Series((rng.random(n) < proba).astype(int))
    group = pd.Series(rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.195, 0.005]), dtype=object)
    group[rng.random(n) < 0.05] = None
    options = ModelCardOptions(min_group_rows=30, bootstrap=BootstrapOptions(resamples=20))
    rows = subgroup_metrics(y, proba, {"g": group}, {"g": "G"}, {"g": ["a", "b", "c", "d"]}, 0.4, options)
    known = group.notna().to_numpy()
    flagged = (proba >= 0.4).astype(int)
    expected = MetricFrame(metrics={"sensitivity": true_positive_rate, "specificity": true_negative_rate},
                           y_true=y[known], y_pred=flagged[known], sensitive_features=group[known]).by_group
    measured = {r.group: r for r in rows}
    assert measured["d"].sensitivity is None and "fewer than 30" in measured["d"].note
    for g in "abc":
        assert measured[g].sensitivity == pytest.approx(expected.loc[g, "sensitivity"], abs=1e-12)
        assert measured[g].specificity == pytest.approx(expected.loc[g, "specificity"], abs=1e-12)
        members = (group == g).to_numpy()
        assert measured[g].rows == members.sum() and measured[g].positives == y[members].sum()
        assert measured[g].brier == pytest.approx(np.mean((proba[members] - y[members]) ** 2))
    check, = fairness_checks(y, proba, {"g": group}, 0.4, rows, options)
    compared = group.isin(["a", "b", "c"]).to_numpy()
    assert check.groups == ["a", "b", "c"]
    assert check.equalized_odds_difference == pytest.approx(equalized_odds_difference(
        y[compared], flagged[compared], sensitive_features=group[compared]), abs=1e-12)


def test_card_carries_fairness_decision_curve_and_explainer_agreement(card_inputs):
    card = build_model_card(**card_inputs, intended_use=IntendedUse(),
                            options=ModelCardOptions(bootstrap=BootstrapOptions(resamples=50)))
    assert {f.attribute for f in card.fairness} == {"sex", "age"}
    assert all(f.equalized_odds_difference is not None for f in card.fairness)
    registered = [p for p in card.decision_curve if p.registered]
    assert len(registered) == 1 and registered[0].threshold == card.threshold.threshold == 0.4
    from heartml.reports.pages import model_card_html

    page = model_card_html(card)
    for heading in ("Decision curve", "Fairness", "Calibration", "Subgroups"):
        assert f"<h2>{heading}" in page, heading
    assert "<svg" in page and "<script" not in page.lower()
