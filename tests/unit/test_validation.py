import numpy as np
import pandas as pd
import pytest

from heartml.core.dataset import load_dataset_spec
from heartml.core.errors import DataSourceError, DataValidationError, InputError
from heartml.core.sources import read_source
from heartml.core.validation import validate_frame
from heartml.core.versioning import check_data_unchanged, frame_fingerprint
from tests.bad_inputs import BAD_INPUTS
from tests.conftest import ROOT


def problems_of(df, spec, source="data.csv"):
    with pytest.raises(DataValidationError) as caught:
        validate_frame(df, spec, source)
    return caught.value.lines


def test_the_bundled_data_passes(heart_raw, heart_spec):
    assert validate_frame(heart_raw, heart_spec, "bundled://heart") is heart_raw


def test_values_validated_once_per_process_and_spec_pass_at_once(heart_raw, heart_spec, monkeypatch):
    """run.py's preflight and the ingestion step validate the same values in one process: the second is free."""
    from heartml.core import validation

    checked = []
    schema_of = validation.build_schema
    monkeypatch.setattr(validation, "build_schema", lambda *args: checked.append(1) or schema_of(*args))
    monkeypatch.setattr(validation, "_passed", set())
    fingerprint = frame_fingerprint(heart_raw)
    for _ in range(2):
        assert validate_frame(heart_raw, heart_spec, "heart.csv", fingerprint) is heart_raw
    assert len(checked) == 1
    validate_frame(heart_raw, heart_spec, "heart.csv")  # no fingerprint: validated
    other_spec = heart_spec.model_copy(update={"name": "another"})
    validate_frame(heart_raw, other_spec, "heart.csv", fingerprint)  # another spec: validated
    assert len(checked) == 3
    bad = heart_raw.assign(Age=heart_raw["Age"].where(heart_raw.index > 0, 500))
    for _ in range(2):  # what failed is never remembered as passed
        with pytest.raises(DataValidationError, match="column 'Age'"):
            validate_frame(bad, heart_spec, "heart.csv", frame_fingerprint(bad))


@pytest.mark.usefixtures("source_root_is_the_checkout")
def test_ingestion_refuses_data_that_changed_after_the_run_checked_it(heart_raw, heart_spec, tmp_path):
    """Ingestion is cached on the hash run.py's preflight read: data that changed since must not be stored under it."""
    from steps.data_ingestion import data_ingestion

    path = tmp_path / "heart.csv"
    heart_raw.to_csv(path, index=False)
    checked = frame_fingerprint(read_source(str(path), heart_spec.read_options))
    check_data_unchanged(checked, checked, str(path))
    check_data_unchanged(checked, None, str(path))  # no check asked for: run outside run.py
    changed = heart_raw.copy()
    changed.loc[0, "Cholesterol"] += 1
    changed.to_csv(path, index=False)
    with pytest.raises(DataSourceError) as caught:
        data_ingestion.entrypoint(dataset=heart_spec, source=str(path), expected_data_hash=checked)
    now = frame_fingerprint(changed)
    assert caught.value.lines == [f"{path}: the data changed after the run's data check (data hash {checked[:12]} "
                                  f"then, {now[:12]} now); nothing was trained: run the command again"]


def test_a_list_column_gets_a_fingerprint_and_its_one_line_error(heart_raw, heart_spec, tmp_path):
    """Parquet keeps lists; pandas cannot hash them, so the fingerprint hashes their text and validation names them."""
    path = tmp_path / "lists.parquet"
    heart_raw.assign(ChestPainType=heart_raw["ChestPainType"].map(lambda value: [value])).to_parquet(path)
    frame = read_source(str(path), heart_spec.read_options)
    fingerprint = frame_fingerprint(frame)
    assert fingerprint == frame_fingerprint(frame.copy()) != frame_fingerprint(heart_raw)
    changed = frame.copy()
    changed.at[0, "ChestPainType"] = ["NAP", "ASY"]
    assert frame_fingerprint(changed) != fingerprint
    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame, heart_spec, str(path), fingerprint)
    assert len(caught.value.lines) == 1
    assert caught.value.lines[0].startswith(f"{path}: column 'ChestPainType': rule 'one of [")


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: case.name)
def test_each_bad_input_gives_its_one_line_error(case, heart_raw, heart_spec, tmp_path):
    path = tmp_path / f"{case.name}.csv"
    case.write(heart_raw, path)
    with pytest.raises(InputError) as caught:
        validate_frame(read_source(str(path), heart_spec.read_options), heart_spec, str(path))
    assert caught.value.lines == case.expected(str(path))


def test_every_problem_is_reported_at_once(heart_raw, heart_spec):
    df = heart_raw.drop(columns=["Sex"]).astype({"Cholesterol": object})
    df.loc[[0, 1], "Age"] = [0, 130]
    df.loc[5, "Cholesterol"] = "high"
    df.loc[[7, 8, 9, 10], "FastingBS"] = 2
    df.loc[11, "HeartDisease"] = np.nan
    lines = problems_of(df, heart_spec)
    assert sorted(lines) == sorted([
        "data.csv: column 'Sex': rule 'required column' failed: the column is missing",
        "data.csv: column 'Age': rule 'range [1, 120]' failed for 2 rows (e.g. 0, 130)",
        "data.csv: column 'Cholesterol': rule 'numeric value' failed for 1 row (e.g. 'high')",
        "data.csv: column 'FastingBS': rule 'binary 0/1' failed for 4 rows (e.g. 2)",
        "data.csv: column 'HeartDisease': rule 'not missing' failed for 1 row (e.g. nan)",
    ])


def test_missing_markers_are_not_range_violations(heart_spec, heart_raw):
    # Cholesterol 0 means "not measured": allowed even if the declared range started above 0.
    spec = heart_spec.model_copy(deep=True)
    spec.features["Cholesterol"].min = 50
    assert (heart_raw["Cholesterol"] == 0).sum() == 172
    validate_frame(heart_raw, spec, "x")
    spec.features["Cholesterol"].missing_values = []
    (line,) = problems_of(heart_raw, spec)
    assert line == "data.csv: column 'Cholesterol': rule 'range [50, 1000]' failed for 172 rows (e.g. 0)"


def test_minority_share_and_positive_label(heart_raw, heart_spec):
    few_negatives = pd.concat([heart_raw[heart_raw["HeartDisease"] == 1], heart_raw[heart_raw["HeartDisease"] == 0]
                               .head(20)])
    (line,) = problems_of(few_negatives, heart_spec)
    assert line == ("data.csv: column 'HeartDisease': rule 'minority class share >= 0.05' failed: "
                    "minority share is 0.038")
    yes_no = heart_raw.assign(HeartDisease=heart_raw["HeartDisease"].map({1: "yes", 0: "no"}))
    (line,) = problems_of(yes_no, heart_spec)
    assert line.startswith("data.csv: column 'HeartDisease': rule 'label in [0, 1]' failed for 918 rows "
                           "(e.g. 'no', 'yes')")
    spec = heart_spec.model_copy(deep=True)
    spec.target.positive, spec.target.negative = "yes", "no"
    validate_frame(yes_no, spec, "x")


def test_excluded_and_extra_columns_are_not_required(heart_raw, heart_spec):
    spec = heart_spec.model_copy(update={"exclude": ["RestingECG"]})
    validate_frame(heart_raw.drop(columns=["RestingECG"]).assign(patient_id=range(918)), spec, "x")


def test_numeric_categories_match_integer_and_float_text():
    spec = load_dataset_spec(ROOT / "configs" / "datasets" / "heart.yaml").model_copy(deep=True)
    spec.features["ChestPainType"].categories = ["1", "2", "3", "4"]
    df = read_source("bundled://heart").assign(ChestPainType=lambda d: d["ChestPainType"].map(
        {"ATA": 1.0, "NAP": 2.0, "ASY": 3.0, "TA": np.nan}))
    validate_frame(df, spec, "x")


def synthetic_heart_failure_records(rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame with the UCI heart-failure-records schema, platelets written with thousands separators."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(40, 96, rows),
        "anaemia": rng.integers(0, 2, rows),
        "creatinine_phosphokinase": rng.integers(23, 7862, rows),
        "diabetes": rng.integers(0, 2, rows),
        "ejection_fraction": rng.integers(14, 81, rows),
        "high_blood_pressure": rng.integers(0, 2, rows),
        "platelets": [f"{v:,}" for v in rng.integers(25_000, 850_000, rows)],
        "serum_creatinine": rng.uniform(0.5, 9.4, rows).round(1),
        "serum_sodium": rng.integers(113, 149, rows),
        "sex": rng.integers(0, 2, rows),
        "smoking": rng.integers(0, 2, rows),
        "time": rng.integers(4, 286, rows),
    })
    risk = 0.04 * (frame["age"] - 60) - 0.08 * (frame["ejection_fraction"] - 38) + 0.6 * frame["serum_creatinine"]
    frame["DEATH_EVENT"] = (risk + rng.normal(0, 1.5, rows) > 1.2).astype(int)
    return frame


@pytest.fixture(scope="module")
def records_spec():
    return load_dataset_spec(ROOT / "configs" / "datasets" / "heart_failure_records.yaml")


def test_heart_failure_records_schema_validates_a_synthetic_file(records_spec, tmp_path):
    path = tmp_path / "records.csv"
    synthetic_heart_failure_records(200).to_csv(path, index=False)
    assert '"' in path.read_text()  # platelets are quoted "123,456" strings in the file
    df = read_source(str(path), records_spec.read_options)
    assert df["platelets"].dtype.kind == "i"
    validate_frame(df, records_spec, str(path))
    assert records_spec.target.column == "DEATH_EVENT" and "time" in records_spec.exclude
    assert "time" not in records_spec.model_features and len(records_spec.model_features) == 11
    # Without the dataset's thousands option the same file fails clearly on platelets.
    with pytest.raises(DataValidationError, match=r"column 'platelets': rule 'numeric value' failed for 200 rows"):
        validate_frame(read_source(str(path)), records_spec, str(path))


def test_heart_failure_records_rules(records_spec):
    df = synthetic_heart_failure_records(120, seed=1)
    df["platelets"] = df["platelets"].str.replace(",", "").astype(int)
    df.loc[[0, 1], "ejection_fraction"] = [2, 95]
    df.loc[2, "smoking"] = 3
    df = df.drop(columns=["time"])  # excluded, so not required
    assert sorted(problems_of(df, records_spec)) == sorted([
        "data.csv: column 'ejection_fraction': rule 'range [5, 90]' failed for 2 rows (e.g. 2, 95)",
        "data.csv: column 'smoking': rule 'binary 0/1' failed for 1 row (e.g. 3)",
    ])
