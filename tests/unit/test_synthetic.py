import numpy as np
import pandas as pd
import pytest

from heartml.core.synthetic import synthetic_patients


@pytest.fixture(scope="module")
def synthetic(request):
    from heartml.core.sources import read_source

    real = read_source("bundled://heart")
    return real, synthetic_patients(real, 50_000, target="HeartDisease", seed=3)


def test_schema_and_dtypes_are_the_real_ones(synthetic):
    real, fake = synthetic
    assert list(fake.columns) == list(real.columns)
    assert fake.dtypes.equals(real.dtypes)
    assert len(fake) == 50_000
    for column in ("Sex", "ChestPainType", "RestingECG", "ExerciseAngina", "ST_Slope"):
        assert set(fake[column]) <= set(real[column])


def test_marginals_and_target_share_match(synthetic):
    real, fake = synthetic
    assert fake["HeartDisease"].mean() == pytest.approx(real["HeartDisease"].mean(), abs=0.01)
    assert (fake["Cholesterol"] == 0).mean() == pytest.approx((real["Cholesterol"] == 0).mean(), abs=0.01)
    for column in ("Age", "MaxHR", "Oldpeak"):
        assert fake[column].median() == pytest.approx(real[column].median(), abs=1.0)
    shares = fake["ChestPainType"].value_counts(normalize=True)
    expected = real["ChestPainType"].value_counts(normalize=True)
    assert np.allclose(shares[expected.index], expected, atol=0.01)


def test_correlations_with_the_target_are_kept(synthetic):
    real, fake = synthetic
    for column in ("Age", "MaxHR", "Oldpeak"):
        expected = real[[column, "HeartDisease"]].corr(method="spearman").iloc[0, 1]
        got = fake[[column, "HeartDisease"]].corr(method="spearman").iloc[0, 1]
        assert got == pytest.approx(expected, abs=0.05), column
    up_rate = lambda df: df.loc[df["ST_Slope"] == "Up", "HeartDisease"].mean()  # noqa: E731
    assert up_rate(fake) == pytest.approx(up_rate(real), abs=0.03)


def test_seeded():
    from heartml.core.sources import read_source

    real = read_source("bundled://heart")
    a = synthetic_patients(real, 1000, target="HeartDisease", seed=5)
    b = synthetic_patients(real, 1000, target="HeartDisease", seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(synthetic_patients(real, 1000, target="HeartDisease", seed=6))
