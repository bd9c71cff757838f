import pandas as pd
import pytest

from heartml.core.dataset import FeatureSpec, category_text, load_dataset_spec
from heartml.core.errors import ConfigError
from tests.conftest import ROOT


def test_shipped_descriptions_load():
    heart = load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml")
    assert heart.default_source == "bundled://heart" and heart.target.labels == [0, 1]
    assert heart.columns_of_kind("categorical") == ["Sex", "ChestPainType", "RestingECG", "ExerciseAngina", "ST_Slope"]
    records = load_dataset_spec(ROOT / "configs" / "datasets" / "heart_failure_records.yaml")
    assert records.read_options == {"thousands": ","} and records.exclude == ["time"]
    assert records.columns_of_kind("binary") == ["anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"]


def write(tmp_path, text):
    path = tmp_path / "d.yaml"
    path.write_text(text)
    return path


BASE = "name: d\ndefault_source: x.csv\ntarget: {column: y}\n"


@pytest.mark.parametrize("body, expected", [
    ("features: {a: {kind: numeric, mni: 3}}", ["features.a.mni: Extra inputs are not permitted"]),
    ("features: {a: {kind: number}}", ["features.a.kind: Input should be 'numeric', 'categorical' or 'binary'"]),
    ("features: {a: {kind: categorical}}", [": Value error, feature 'a' is categorical but lists no categories"]),
    ("features: {a: {kind: numeric}}\nexclude: [a]", [": Value error, every feature is excluded"]),
    ("features: {a: {kind: numeric}, b: {kind: binary}}\nexclude: [a]\nsubgroups: {age: a}",
     [": Value error, subgroups.age: 'a' is not a (non-excluded) feature"]),
    ("features: {a: {kind: numeric, min: 5, max: 1}}", [": Value error, feature 'a': min 5.0 is above max 1.0"]),
])
def test_description_problems_are_one_line_each(tmp_path, body, expected):
    path = write(tmp_path, BASE + body)
    with pytest.raises(ConfigError) as caught:
        load_dataset_spec(path)
    assert len(caught.value.lines) == len(expected)
    for line, part in zip(caught.value.lines, expected):
        assert line.startswith(f"{path}: ") and part in line


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: dataset description not found"):
        load_dataset_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"d\.yaml: not valid YAML"):
        load_dataset_spec(write(tmp_path, "name: [unclosed"))


def test_category_text_and_missing_markers():
    text = category_text(pd.Series([1.0, 2, "3", None, 2.5]))
    assert text.iloc[:3].tolist() == ["1", "2", "3"] and pd.isna(text.iloc[3]) and text.iloc[4] == "2.5"
    feature = FeatureSpec(kind="numeric", missing_values=[0, "?"])
    mask = feature.missing_mask(pd.Series([0, "0", "?", 5, None], dtype=object))
    assert mask.tolist() == [True, True, True, False, False]
