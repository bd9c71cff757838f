"""A data profile of the raw frame: per-column statistics, missing values, "not measured" markers, target balance.

`render_profile_html` draws it from the `profile.html` template (static HTML, the reports' one stylesheet, no
scripts, no external resources), because the ZenML dashboard shows visualizations in an iframe that runs none.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import pandas as pd
from pydantic import BaseModel

from heartml.core.dataset import DatasetSpec
from heartml.reports import html


class ColumnProfile(BaseModel):
    name: str
    role: str  # numeric / categorical / binary feature, target, excluded, or undeclared
    dtype: str
    missing: int  # empty cells as read
    markers: int  # cells holding a "not measured" marker (e.g. Cholesterol == 0)
    zeros: int
    distinct: int
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    p25: Optional[float] = None
    median: Optional[float] = None
    p75: Optional[float] = None
    max: Optional[float] = None
    top_values: Dict[str, int] = {}  # most frequent values (categorical, binary, target)


class DataProfile(BaseModel):
    dataset: str
    source: str
    rows: int
    columns: int
    duplicate_rows: int
    target: str
    target_counts: Dict[str, int]
    column_profiles: List[ColumnProfile]

    @property
    def missing_total(self) -> int:
        return sum(c.missing + c.markers for c in self.column_profiles)


def _role(name: str, spec: DatasetSpec) -> str:
    if name == spec.target.column:
        return "target"
    if name in spec.exclude:
        return "excluded"
    if name in spec.features:
        return spec.features[name].kind
    return "undeclared"


def _number(value) -> Optional[float]:
    return None if pd.isna(value) else float(value)


def profile_frame(df: pd.DataFrame, spec: DatasetSpec, source: str) -> DataProfile:
    profiles = []
    for name in df.columns:
        values = df[name]
        role = _role(name, spec)
        markers = int(spec.features[name].missing_mask(values).sum()) if name in spec.features else 0
        # Parsing text as numbers is the slow part on large frames; categories are never numbers to summarise.
        numeric = pd.to_numeric(values, errors="coerce") if role != "categorical" else pd.Series(dtype=float)
        profile = ColumnProfile(
            name=str(name), role=role, dtype=str(values.dtype), missing=int(values.isna().sum()), markers=markers,
            zeros=int((numeric == 0).sum()), distinct=int(values.nunique()),
        )
        if role in ("numeric", "excluded", "undeclared") and numeric.notna().any():
            q = numeric.quantile([0.25, 0.5, 0.75])
            profile = profile.model_copy(update=dict(
                mean=_number(numeric.mean()), std=_number(numeric.std()), min=_number(numeric.min()),
                p25=_number(q[0.25]), median=_number(q[0.5]), p75=_number(q[0.75]), max=_number(numeric.max()),
            ))
        if role in ("categorical", "binary", "target") or (role == "undeclared" and not numeric.notna().any()):
            counts = values.astype("object").value_counts(dropna=True).head(8)
            profile = profile.model_copy(update={"top_values": {str(k): int(v) for k, v in counts.items()}})
        profiles.append(profile)
    target = spec.target.column
    target_counts = df[target].value_counts().sort_index() if target in df else pd.Series(dtype=int)
    return DataProfile(
        dataset=spec.name, source=source, rows=len(df), columns=df.shape[1],
        duplicate_rows=int(df.duplicated().sum()), target=target,
        target_counts={str(k): int(v) for k, v in target_counts.items()}, column_profiles=profiles,
    )


def render_profile_html(profile: DataProfile) -> str:
    total = max(profile.rows, 1)
    balance_total = max(sum(profile.target_counts.values()), 1)
    balance = html.table(
        [{"label": label, "rows": count, "share": count / balance_total}
         for label, count in profile.target_counts.items()],
        cell={"share": html.share_bar})
    columns = []
    for c in profile.column_profiles:
        columns.append({
            "column": c.name, "role": c.role, "dtype": c.dtype, "missing": c.missing, '"not measured"': c.markers,
            "zeros": c.zeros, "missing + not measured": (c.missing + c.markers) / total, "distinct": c.distinct,
            **{label: _statistic(getattr(c, name)) for label, name in STATISTICS},
            "most frequent": ", ".join(f"{k}: {v}" for k, v in c.top_values.items()),
        })
    return html.render(
        "profile.html", title=f"Data profile: {profile.dataset}", source=profile.source, target=profile.target,
        cards=[{"value": f"{profile.rows:,}", "label": "rows"}, {"value": profile.columns, "label": "columns"},
               {"value": profile.duplicate_rows, "label": "duplicate rows"},
               {"value": f"{profile.missing_total:,}", "label": 'missing or "not measured" cells'}],
        balance=balance,
        columns=html.table(columns, cell={
            "missing + not measured": lambda share: html.share_bar(share, css="missing"),
            '"not measured"': lambda n: html.Cell(text=str(n), css="warn" if n else ""),
        }),
    )


STATISTICS = (("mean", "mean"), ("std", "std"), ("min", "min"), ("25%", "p25"), ("median", "median"),
              ("75%", "p75"), ("max", "max"))


def _statistic(value: Optional[float]) -> str:
    return "" if value is None else f"{value:,.4g}"
