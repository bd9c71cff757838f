"""Schema validation with pandera, built from the dataset description.

Every problem becomes one line: `<source>: column '<col>': rule '<rule>' failed for N rows (e.g. a, b, c)`, or
for a rule about the whole table `<source>: [column '<col>': ]rule '<rule>' failed: <what was found>`.
The checks run on the raw frame with the dataset's missing markers masked, so a `0` that means "not measured"
is never out of range. Typed, cleaned data is produced later by preprocessing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from heartml.core.dataset import DatasetSpec, category_text
from heartml.core.errors import DataValidationError

MAX_EXAMPLES = 3
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class TableRule:
    """A rule about the whole table; `explain` says what was found when it fails."""

    name: str
    column: str | None
    passes: Callable[[pd.DataFrame], bool]
    explain: Callable[[pd.DataFrame], str]


def _fmt(value: float) -> str:
    return f"{value:g}"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _as_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def _value_rules(name: str, spec: DatasetSpec) -> List[Tuple[str, Callable[[pd.Series], pd.Series]]]:
    """(rule name, check) for one feature's measured values: each check returns a boolean per value."""
    feature = spec.features[name]
    if feature.kind == "categorical":
        allowed = list(feature.categories or [])
        return [(f"one of [{', '.join(allowed)}]", lambda s: category_text(s).isin(allowed))]
    if feature.kind == "binary":
        return [("binary 0/1", lambda s: _as_number(s).isin([0, 1]))]
    rules = [("numeric value", lambda s: _as_number(s).notna())]
    if feature.min is not None or feature.max is not None:
        low = -np.inf if feature.min is None else feature.min
        high = np.inf if feature.max is None else feature.max
        # Text that is not a number is reported by 'numeric value', not again here.
        rules.append((f"range [{_fmt(low)}, {_fmt(high)}]",
                      lambda s: _as_number(s).between(low, high) | _as_number(s).isna()))
    return rules


def _column_checks(name: str, spec: DatasetSpec, training: bool = True) -> List[pa.Check]:
    # Every check returns a boolean per row; pandera ignores the rows that are missing (nullable columns).
    # A batch of records to score may lack a measurement entirely; a training set may not.
    checks = [pa.Check(lambda s: s.notna().any(), ignore_na=False, element_wise=False, name="not all missing")
              ] if training else []
    return checks + [pa.Check(check, name=rule) for rule, check in _value_rules(name, spec)]


def _records_pass(masked: pd.DataFrame, spec: DatasetSpec) -> bool:
    """Whether records meet every column rule, by the same checks applied directly to the measured values: about
    1 ms for a few records where pandera's lazy validation takes 8 (what online scoring cannot spend). pandera
    still runs whenever this says no, and words the messages."""
    for name in spec.model_features:
        if name not in masked:
            return False
        measured = masked[name][masked[name].notna()]
        if len(measured) and not all(bool(check(measured).all()) for _, check in _value_rules(name, spec)):
            return False
    return True


def _table_rules(spec: DatasetSpec) -> List[TableRule]:
    target = spec.target
    labels = target.labels

    def class_counts(df: pd.DataFrame) -> pd.Series:
        values = df[target.column] if target.column in df else pd.Series(dtype=object)
        return values[values.isin(labels)].value_counts()

    def minority_share(df: pd.DataFrame) -> float:
        counts = class_counts(df)
        return float(counts.min() / counts.sum()) if len(counts) == 2 else 1.0

    return [
        TableRule(
            f"minimum rows {spec.min_rows}", None,
            lambda df: len(df) >= spec.min_rows,
            lambda df: f"the data has {_rows(len(df))}",
        ),
        TableRule(
            "both classes present", target.column,
            lambda df: target.column not in df or len(class_counts(df)) == 2 or not len(class_counts(df)),
            lambda df: "only label " + ", ".join(f"{k!r} ({_rows(v)})" for k, v in class_counts(df).items())
            + f" found; expected {labels!r}",
        ),
        TableRule(
            f"minority class share >= {_fmt(spec.min_minority_share)}", target.column,
            lambda df: minority_share(df) >= spec.min_minority_share,
            lambda df: f"minority share is {minority_share(df):.3f}",
        ),
    ]


def build_schema(spec: DatasetSpec, training: bool = True) -> pa.DataFrameSchema:
    """Training data: features, target and table rules. Records to score (`training=False`): features only."""
    columns = {name: pa.Column(checks=_column_checks(name, spec, training), nullable=True)
               for name in spec.model_features}
    if not training:
        return pa.DataFrameSchema(columns, strict=False)
    target_values = spec.target.labels
    columns[spec.target.column] = pa.Column(
        checks=[pa.Check(lambda s: s.isin(target_values), name=f"label in [{', '.join(map(str, target_values))}]")],
        nullable=False,
    )
    table_checks = [pa.Check(rule.passes, name=rule.name) for rule in _table_rules(spec)]
    return pa.DataFrameSchema(columns, checks=table_checks, strict=False)


def mask_missing_markers(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """A copy with every "not measured" marker of the dataset description replaced by NaN."""
    masked = df.copy()
    for name in spec.model_features:
        if name in masked and spec.features[name].missing_values:
            mask = spec.features[name].missing_mask(masked[name])
            if mask.any():
                masked[name] = masked[name].astype("object").where(~mask, np.nan)
    return masked


_RULE_NAMES: Dict[str, str] = {"not_nullable": "not missing"}


def _format_schema_errors(err: SchemaErrors, df: pd.DataFrame, spec: DatasetSpec, source: str) -> List[str]:
    rules = {rule.name: rule for rule in _table_rules(spec)}
    lines = []
    for (column, check), group in err.failure_cases.groupby(["column", "check"], dropna=False, sort=False):
        check = str(check)
        if check == "column_in_dataframe":
            for missing in group["failure_case"]:
                lines.append(f"{source}: column '{missing}': rule 'required column' failed: the column is missing")
            continue
        if check in rules:
            rule = rules[check]
            where = f"column '{rule.column}': " if rule.column else ""
            lines.append(f"{source}: {where}rule '{rule.name}' failed: {rule.explain(df)}")
            continue
        rule = _RULE_NAMES.get(check, check)
        rows = group["index"].dropna()
        count = rows.nunique() if len(rows) else len(df)
        if rule == "not all missing":
            detail = "every value is empty or a 'not measured' marker"
        else:
            detail = "e.g. " + ", ".join(repr(v) for v in group["failure_case"].drop_duplicates().head(MAX_EXAMPLES))
        lines.append(f"{source}: column '{column}': rule '{rule}' failed for {_rows(count)} ({detail})")
    return lines


def _structure_problem(df: pd.DataFrame, spec: DatasetSpec, source: str, training: bool = True) -> str | None:
    """Problems that make per-column rules meaningless: a wrong delimiter, or a header without rows."""
    if df.shape[1] == 1 and len(spec.model_features) > 1:
        header = str(df.columns[0])
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in header:
                return (f"{source}: rule 'comma-separated columns' failed: the header {header[:60]!r} looks "
                        f"{name}-delimited (set read_options.sep in the dataset description to read such files)")
    if len(df) == 0:
        if not training:
            return f"{source}: rule 'at least one record' failed: there are no rows to score"
        return f"{source}: rule 'at least one data row' failed: there are column names but no rows"
    return None


def _validate(df: pd.DataFrame, spec: DatasetSpec, source: str, training: bool) -> None:
    problem = _structure_problem(df, spec, source, training)
    if problem:
        raise DataValidationError([problem])
    masked = mask_missing_markers(df, spec)
    if not training and _records_pass(masked, spec):
        return
    try:
        with warnings.catch_warnings():  # pandera's own FutureWarning while collecting failure cases
            warnings.simplefilter("ignore", FutureWarning)
            build_schema(spec, training).validate(masked, lazy=True)
    except SchemaErrors as err:
        raise DataValidationError(_format_schema_errors(err, masked, spec, source)) from None


# (frame fingerprint, dataset spec) pairs that passed `validate_frame` in this process.
_passed: Set[Tuple[str, str]] = set()


def validate_frame(df: pd.DataFrame, spec: DatasetSpec, source: str, fingerprint: Optional[str] = None) -> pd.DataFrame:
    """Return the frame unchanged if it meets the dataset's schema, else raise DataValidationError (every problem).

    With `fingerprint` (the frame's `heartml.core.versioning.frame_fingerprint`), values this process already
    validated against the same spec pass at once: `run.py` validates the source before ZenML starts, and on the
    local orchestrator the ingestion step then reads the same values in the same process (1M rows: ~2 s).
    """
    key = (fingerprint, spec.model_dump_json()) if fingerprint else None
    if key in _passed:
        return df
    _validate(df, spec, source, training=True)
    if key:
        _passed.add(key)
    return df


def validate_records(records: pd.DataFrame, spec: DatasetSpec, source: str) -> pd.DataFrame:
    """Records to score: the same column rules without target and training-set rules; numeric and binary
    features come back as float64 (what the model signature declares), everything else as given."""
    _validate(records, spec, source, training=False)
    numeric = spec.columns_of_kind("numeric", "binary")
    return records.assign(**{name: pd.to_numeric(records[name], errors="coerce").astype("float64")
                             for name in numeric})
