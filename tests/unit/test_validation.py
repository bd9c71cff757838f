import pytest

from heartml.errors import DataValidationError
from heartml.validation import validate_frame


def problems_of(df, spec):
    with pytest.raises(DataValidationError) as caught:
        validate_frame(df, spec, "data.csv")
    return caught.value.lines


def test_the_bundled_data_passes(heart_raw, heart_spec):
    validate_frame(heart_raw, heart_spec, "bundled://heart")


def test_missing_column_is_named(heart_raw, heart_spec):
    lines = problems_of(heart_raw.drop(columns=["MaxHR"]), heart_spec)
    assert lines == ["data.csv: column 'MaxHR': rule 'required column' failed: the column is missing"]


def test_out_of_range_counts_rows_and_gives_examples(heart_raw, heart_spec):
    df = heart_raw.copy()
    df.loc[[0, 5, 9], "Age"] = [150, 200, 150]
    (line,) = problems_of(df, heart_spec)
    assert line.startswith("data.csv: column 'Age': rule 'in_range(1.0, 120.0)' failed for 3 rows")
    assert "150" in line and "200" in line


def test_unknown_category(heart_raw, heart_spec):
    df = heart_raw.copy()
    df.loc[3, "ChestPainType"] = "XYZ"
    (line,) = problems_of(df, heart_spec)
    assert "column 'ChestPainType'" in line and "failed for 1 rows" in line and "'XYZ'" in line


def test_single_class_target(heart_raw, heart_spec):
    df = heart_raw[heart_raw["HeartDisease"] == 1]
    lines = problems_of(df, heart_spec)
    assert any("column 'HeartDisease'" in line and "binary target" in line for line in lines)


def test_too_few_rows(heart_raw, heart_spec):
    lines = problems_of(heart_raw.groupby("HeartDisease").head(10), heart_spec)
    assert lines == ["data.csv: rule 'minimum rows 50' failed: the data has 20 rows"]


def test_non_numeric_text_in_numeric_column(heart_raw, heart_spec):
    df = heart_raw.astype({"Cholesterol": object})
    df.loc[1, "Cholesterol"] = "high"
    lines = problems_of(df, heart_spec)
    assert any("column 'Cholesterol'" in line and "'high'" in line for line in lines)
