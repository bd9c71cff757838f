"""Schema validation with pandera, built from the dataset description.

Every problem becomes one line: source, column, rule, number of offending rows, a few examples.
"""

from __future__ import annotations

from typing import List

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from heartml.dataset import DatasetSpec
from heartml.errors import DataValidationError

MAX_EXAMPLES = 3


def build_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    columns = {}
    for name in spec.model_features:
        feature = spec.features[name]
        if feature.kind == "categorical":
            checks = [pa.Check.isin(feature.categories, name=f"allowed categories {feature.categories}")]
            columns[name] = pa.Column(str, checks=checks, nullable=True, coerce=True)
        elif feature.kind == "binary":
            columns[name] = pa.Column(float, checks=[pa.Check.isin([0, 1], name="binary 0/1")], nullable=True, coerce=True)
        else:
            checks = []
            if feature.min is not None or feature.max is not None:
                low = -float("inf") if feature.min is None else feature.min
                high = float("inf") if feature.max is None else feature.max
                checks.append(pa.Check.in_range(low, high, name=f"range [{feature.min}, {feature.max}]"))
            columns[name] = pa.Column(float, checks=checks, nullable=True, coerce=True)
        columns[name].checks.append(
            pa.Check(lambda s: bool(s.notna().any()), element_wise=False, name="not entirely missing")
        )
    columns[spec.target.column] = pa.Column(
        checks=[pa.Check(lambda s: s.nunique() == 2, element_wise=False, name="binary target (exactly 2 classes)")],
        nullable=False,
    )
    return pa.DataFrameSchema(columns, strict=False)


def _dataset_level_problems(df: pd.DataFrame, spec: DatasetSpec, source: str) -> List[str]:
    problems = []
    if len(df) < spec.min_rows:
        problems.append(f"{source}: rule 'minimum rows {spec.min_rows}' failed: the data has {len(df)} rows")
    target = spec.target.column
    if target in df.columns and len(df):
        shares = df[target].value_counts(normalize=True)
        if len(shares) == 2 and shares.min() < spec.min_minority_share:
            problems.append(
                f"{source}: column '{target}': rule 'minority class share >= {spec.min_minority_share}' failed: "
                f"minority share is {shares.min():.3f}"
            )
        if len(shares) == 2 and spec.target.positive not in set(shares.index):
            problems.append(
                f"{source}: column '{target}': rule 'positive label {spec.target.positive!r} present' failed: "
                f"labels are {sorted(map(str, shares.index))}"
            )
    return problems


def _format_schema_errors(err: SchemaErrors, source: str) -> List[str]:
    cases = err.failure_cases
    lines = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column_text = f"column '{column}'" if isinstance(column, str) else "table"
        if str(check) == "column_in_dataframe":
            for missing in group["failure_case"]:
                lines.append(f"{source}: column '{missing}': rule 'required column' failed: the column is missing")
            continue
        rows = group["index"].dropna()
        count = len(rows) if len(rows) else len(group)
        examples = ", ".join(repr(v) for v in group["failure_case"].drop_duplicates().head(MAX_EXAMPLES))
        lines.append(f"{source}: {column_text}: rule '{check}' failed for {count} rows (e.g. {examples})")
    return lines


def validate_frame(df: pd.DataFrame, spec: DatasetSpec, source: str) -> pd.DataFrame:
    """Return the frame with schema dtypes applied, or raise DataValidationError listing every problem."""
    problems: List[str] = []
    if df.shape[1] <= 1 and df.shape[0] > 0 and ";" in str(df.columns[0]):
        raise DataValidationError(
            [f"{source}: rule 'comma-separated columns' failed: header {str(df.columns[0])[:60]!r} looks ';'-delimited"]
        )
    validated = df
    try:
        validated = build_schema(spec).validate(df, lazy=True)
    except SchemaErrors as err:
        problems.extend(_format_schema_errors(err, source))
    problems.extend(_dataset_level_problems(df, spec, source))
    if problems:
        raise DataValidationError(problems)
    return validated
