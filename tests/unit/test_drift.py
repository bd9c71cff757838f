"""Drift tests (Evidently) on the bundled heart data: unshifted halves, shifted cohorts, and the options."""

import numpy as np
import pandas as pd
import pytest

from heartml.core.preprocessing import clean_records
from heartml.monitoring.drift import MonitoringOptions, detect_drift, monitoring_frame


@pytest.fixture(scope="module")
def frames(heart_spec):
    from heartml.core.sources import read_source

    cleaned = clean_records(read_source("bundled://heart"), heart_spec)
    # A probability that depends on the features, as a model's would.
    probability = 1 / (1 + np.exp(-(cleaned["Age"].to_numpy() - 54) / 8))
    frame = monitoring_frame(cleaned, heart_spec, pd.Series(probability))
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return shuffled.iloc[:600].reset_index(drop=True), shuffled.iloc[600:].reset_index(drop=True)


def drift(reference, current, spec, **options):
    return detect_drift(reference, current, spec, MonitoringOptions(**options), model_name="m", model_version="1",
                        source="test")


def test_a_random_half_of_the_same_data_does_not_drift(frames, heart_spec):
    reference, current = frames
    report = drift(reference, current, heart_spec)
    assert not report.drift_detected and not report.retraining_recommended
    tested = [test for test in report.tests if test.score is not None]
    # 11 features, the missing shares of the two columns with a missing marker, the probability.
    assert len(tested) == 14 and {test.kind for test in tested} == {"feature", "missing share", "prediction"}
    # Bonferroni: every p-value test gets 0.05 / (number of p-value tests).
    p_tests = [test for test in tested if "p_value" in test.method]
    assert p_tests and all(test.threshold == pytest.approx(0.05 / len(p_tests)) for test in p_tests)


def test_older_patients_drift_in_age_and_in_the_predictions(frames, heart_spec):
    reference, current = frames
    report = drift(reference, current[current["Age"] >= 60], heart_spec)
    drifted = {test.column for test in report.drifted}
    assert {"Age", "probability"} <= drifted and report.retraining_recommended
    assert "Sex" not in drifted


def test_not_measured_cholesterol_drifts_in_its_missing_share(frames, heart_spec):
    reference, current = frames
    cohort = current[current["Cholesterol not measured"] == "not measured"]
    report = drift(reference, cohort, heart_spec)
    by_column = {test.column: test for test in report.tests}
    assert by_column["Cholesterol not measured"].drifted
    # No measured cholesterol in the batch: the value test is not run, and says why.
    assert by_column["Cholesterol"].score is None and "0 measured values scored" in by_column["Cholesterol"].note


def test_too_few_records_give_no_verdict(frames, heart_spec):
    reference, current = frames
    report = drift(reference, current.head(10), heart_spec, min_rows=30)
    assert not report.drift_detected and report.verdict.startswith("not tested: 10 records scored")


def test_a_named_test_and_threshold_replace_evidentlys_choice(frames, heart_spec):
    reference, current = frames
    report = drift(reference, current, heart_spec, family_wise=False,
                   tests={"Age": {"method": "wasserstein", "threshold": 0.001}})
    age = next(test for test in report.tests if test.column == "Age")
    assert age.method.startswith("Wasserstein") and age.threshold == 0.001 and age.drifted
