"""Data drift: scored records against the training data of the model that scored them, with Evidently.

Three kinds of test, one per column: each model feature (its measured values), the share of each feature's
missing / "not measured" values, and the predicted probability (scored records against the out-of-fold
probabilities of the training rows). Evidently chooses each test the way its DataDriftPreset does (K-S or
chi-square / Z-test on small samples, Wasserstein or Jensen-Shannon distance on large ones) unless the options name
one; with many p-value tests at once their threshold is divided by their number (Bonferroni), so a batch drawn
from the training distribution trips none with probability about 1 - threshold.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Dict, List, Literal, Optional

import pandas as pd
from pydantic import BaseModel, Field

from heartml.core.dataset import DatasetSpec
from heartml.core.preprocessing import clean_records, own_columns

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry: never from here

PROBABILITY = "probability"  # the predicted P(positive) column of both frames
MISSING_SUFFIX = " not measured"
MEASURED, NOT_MEASURED = "measured", "not measured"
TestKind = Literal["feature", "missing share", "prediction"]


class DriftTestOptions(BaseModel):
    """One column's test: an Evidently stat test name (ks, chisquare, z, wasserstein, jensenshannon, psi, ...) and
    its threshold (a p-value for tests, a distance for distances). None: Evidently's choice and default."""

    method: Optional[str] = None
    threshold: Optional[float] = Field(default=None, gt=0)


class MonitoringOptions(BaseModel):
    """What counts as drift and what it triggers."""

    gate: Literal["warn", "fail"] = "warn"  # fail: the run fails when drift is detected (after the report is saved)
    # Per column: a feature name, "<feature> not measured" or "probability"; unnamed columns use `default`.
    tests: Dict[str, DriftTestOptions] = Field(default_factory=dict)
    default: DriftTestOptions = Field(default_factory=DriftTestOptions)
    family_wise: bool = True  # divide p-value thresholds by the number of p-value tests (Bonferroni)
    # Retraining is recommended when the predictions drifted or at least this share of the features did.
    retrain_feature_share: float = Field(default=0.25, gt=0, le=1)
    min_rows: int = Field(default=30, ge=1)  # fewer scored records (or measured values of a column): not tested


class DriftTest(BaseModel):
    column: str
    kind: TestKind
    method: str = ""  # Evidently's display name ("K-S p_value", "Wasserstein distance (normed)")
    threshold: Optional[float] = None  # as applied (after the family-wise division)
    score: Optional[float] = None
    drifted: bool = False
    reference: str = ""  # a short summary of each side: mean / share, count
    current: str = ""
    note: str = ""  # why a column was not tested


class DriftReport(BaseModel):
    """The verdict on one batch (or request-log window) of scored records."""

    model_name: str
    model_version: str
    source: str  # what was scored: a URI or "request log <from> - <to>"
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    reference_rows: int
    current_rows: int
    tests: List[DriftTest]
    drift_detected: bool
    retraining_recommended: bool
    gate: Literal["warn", "fail"] = "warn"
    verdict: str

    @property
    def drifted(self) -> List[DriftTest]:
        return [test for test in self.tests if test.drifted]

    def summary(self) -> Dict[str, object]:
        """The booleans and counts a run summary carries."""
        return {"drift_detected": self.drift_detected, "retraining_recommended": self.retraining_recommended,
                "drifted_columns": [test.column for test in self.drifted], "rows": self.current_rows,
                "verdict": self.verdict}


def monitoring_frame(cleaned: pd.DataFrame, spec: DatasetSpec, probability: pd.Series) -> pd.DataFrame:
    """The columns drift is measured on: each feature (missing as NaN), a measured / not measured column per
    feature, and the probability. `cleaned` is `clean_records` output, so every missing marker is NaN."""
    frame = own_columns(cleaned, spec.model_features)  # one copy, where reset_index and .copy() made two more
    frame.index = pd.RangeIndex(len(frame))
    for column in spec.model_features:
        frame[column + MISSING_SUFFIX] = cleaned[column].isna().map({True: NOT_MEASURED, False: MEASURED}).to_numpy()
    frame[PROBABILITY] = pd.to_numeric(probability, errors="coerce").to_numpy(dtype=float)
    return frame


def scored_drift(scored: pd.DataFrame, reference: pd.DataFrame, spec: DatasetSpec, options: MonitoringOptions,
                 *, model_name: str, model_version: str, source: str) -> DriftReport:
    """Drift of scored records (their input columns as sent, plus `probability`) from a version's training
    reference (cleaned training features plus out-of-fold `probability`, as registered)."""
    current = monitoring_frame(clean_records(scored, spec), spec, scored[PROBABILITY])
    return detect_drift(monitoring_frame(reference, spec, reference[PROBABILITY]), current, spec, options,
                        model_name=model_name, model_version=model_version, source=source)


def detect_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, options: MonitoringOptions,
                 *, model_name: str, model_version: str, source: str) -> DriftReport:
    """Every test on `monitoring_frame`s of the training reference and the scored records."""
    # Evidently is imported here, not with the module: the report types below travel with every training run
    # (materializers, dashboard pages), and importing Evidently takes about 4 s.
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType
    from evidently.metrics import ValueDrift

    kinds = _column_kinds(spec, reference, current)
    planned, skipped = [], []
    for column, (kind, column_type) in kinds.items():
        measured_ref, measured_cur = reference[column].dropna(), current[column].dropna()
        if len(current) < options.min_rows:
            skipped.append(DriftTest(column=column, kind=kind, note=f"{len(current)} records scored "
                                                                    f"(fewer than {options.min_rows})"))
        elif len(measured_cur) < options.min_rows or len(measured_ref) < options.min_rows:
            skipped.append(DriftTest(column=column, kind=kind, note=f"{len(measured_cur)} measured values scored, "
                                     f"{len(measured_ref)} in training (fewer than {options.min_rows}); the "
                                     f"'{column + MISSING_SUFFIX}' test covers it"))
        else:
            chosen = options.tests.get(column, options.default)
            stattest = get_stattest(measured_ref, measured_cur, column_type, chosen.method)
            planned.append((column, kind, column_type, stattest, chosen.threshold or stattest.default_threshold))
    p_value_tests = sum("p_value" in stattest.display_name for *_, stattest, _ in planned)
    tests = []
    if planned:
        metrics = []
        for column, _, _, stattest, threshold in planned:
            if options.family_wise and "p_value" in stattest.display_name:
                threshold = threshold / p_value_tests
            metrics.append(ValueDrift(column=column, method=stattest.name, threshold=threshold))
        definition = DataDefinition(
            numerical_columns=[c for c, _, t, *_ in planned if t == ColumnType.Numerical],
            categorical_columns=[c for c, _, t, *_ in planned if t == ColumnType.Categorical])
        columns = [column for column, *_ in planned]
        snapshot = Report(metrics, include_tests=True).run(
            Dataset.from_pandas(current[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition)).dict()
        status = {test["metric_config"]["metric_id"]: test["status"] for test in snapshot["tests"]}
        for (column, kind, _, stattest, _), result in zip(planned, snapshot["metrics"]):
            tests.append(DriftTest(
                column=column, kind=kind, method=stattest.display_name,
                threshold=float(result["config"]["threshold"]), score=float(result["value"]),
                drifted=status.get(result["id"]) == "FAIL",
                reference=_describe(reference[column]), current=_describe(current[column])))
    tests = sorted(tests + skipped, key=lambda test: list(kinds).index(test.column))
    return _verdict(tests, spec, options, model_name=model_name, model_version=model_version, source=source,
                    reference_rows=len(reference), current_rows=len(current))


def _column_kinds(spec: DatasetSpec, reference: pd.DataFrame, current: pd.DataFrame) -> Dict[str, tuple]:
    """Column -> (kind, Evidently column type). A missing-share test only for features that can be missing (a
    missing marker in the description, or a missing value on either side): the others would only add tests."""
    from evidently.legacy.core import ColumnType

    kinds: Dict[str, tuple] = {}
    for column in spec.model_features:
        numeric = spec.features[column].kind == "numeric"
        kinds[column] = ("feature", ColumnType.Numerical if numeric else ColumnType.Categorical)
    for column in spec.model_features:
        if spec.features[column].missing_values or reference[column].isna().any() or current[column].isna().any():
            kinds[column + MISSING_SUFFIX] = ("missing share", ColumnType.Categorical)
    kinds[PROBABILITY] = ("prediction", ColumnType.Numerical)
    return kinds


def _describe(values: pd.Series) -> str:
    measured = values.dropna()
    if measured.empty:
        return f"none of {len(values)}"
    if pd.api.types.is_numeric_dtype(measured):
        return f"mean {measured.mean():.3g} (n={len(measured)})"
    shares = measured.astype(str).value_counts(normalize=True)
    return ", ".join(f"{value} {share:.0%}" for value, share in shares.head(3).items()) + f" (n={len(measured)})"


def _verdict(tests: List[DriftTest], spec: DatasetSpec, options: MonitoringOptions, **fields) -> DriftReport:
    drifted = [test for test in tests if test.drifted]
    features = {test.column for test in drifted if test.kind == "feature"}
    features |= {test.column[:-len(MISSING_SUFFIX)] for test in drifted if test.kind == "missing share"}
    prediction = any(test.kind == "prediction" for test in drifted)
    share = len(features) / max(len(spec.model_features), 1)
    retrain = prediction or share >= options.retrain_feature_share
    tested = sum(test.score is not None for test in tests)
    if not tested:
        verdict = f"not tested: {tests[0].note}" if tests else "not tested"
    elif not drifted:
        verdict = f"no drift in {tested} tests"
    else:
        verdict = (f"drift in {len(drifted)} of {tested} tests ({', '.join(test.column for test in drifted)}); "
                   + ("retraining recommended" if retrain else "retraining not yet recommended")
                   + f": {'predictions drifted, ' if prediction else ''}{len(features)} of "
                     f"{len(spec.model_features)} features drifted")
    return DriftReport(tests=tests, drift_detected=bool(drifted), retraining_recommended=bool(drifted) and retrain,
                       gate=options.gate, verdict=verdict, **fields)
