"""A data profile of the raw frame: per-column statistics, missing values, "not measured" markers, target balance.

`render_profile_html` draws it as static HTML (inline CSS, no scripts, no external resources), because the
ZenML dashboard shows visualizations in an iframe that runs no scripts.
"""

from __future__ import annotations

import html
from typing import Dict, List, Optional

import pandas as pd
from pydantic import BaseModel

from heartml.core.dataset import DatasetSpec


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


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:13px;color:#1f2937;margin:16px}
h1{font-size:18px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px} p.meta{color:#6b7280;margin:0 0 10px}
table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:right;
white-space:nowrap} th{background:#f3f4f6;position:sticky;top:0} td.l,th.l{text-align:left}
.bar{display:inline-block;height:10px;background:#6366f1;vertical-align:middle;margin-right:6px}
.bar.miss{background:#f59e0b} .bar.neg{background:#10b981} .warn{color:#b45309;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:18px}
"""


def _bar(share: float, css: str = "", width: int = 60) -> str:
    pixels = max(1, round(share * width)) if share > 0 else 0
    return f'<span class="bar {css}" style="width:{pixels}px"></span>'


def _cell(value: Optional[float]) -> str:
    return "" if value is None else f"{value:,.4g}"


def render_profile_html(profile: DataProfile) -> str:
    e = html.escape
    total = max(profile.rows, 1)
    balance_total = max(sum(profile.target_counts.values()), 1)
    balance = "".join(
        f'<tr><td class="l">{e(label)}</td><td>{count}</td><td class="l">'
        f'{_bar(count / balance_total, "neg" if i == 0 else "")}{count / balance_total:.1%}</td></tr>'
        for i, (label, count) in enumerate(profile.target_counts.items())
    )
    rows = []
    for c in profile.column_profiles:
        absent = c.missing + c.markers
        top = ", ".join(f"{e(k)}: {v}" for k, v in c.top_values.items())
        rows.append(
            f'<tr><td class="l">{e(c.name)}</td><td class="l">{e(c.role)}</td><td class="l">{e(c.dtype)}</td>'
            f'<td>{c.missing}</td><td{" class=warn" if c.markers else ""}>{c.markers}</td><td>{c.zeros}</td>'
            f'<td class="l">{_bar(absent / total, "miss")}{absent / total:.1%}</td><td>{c.distinct}</td>'
            f"<td>{_cell(c.mean)}</td><td>{_cell(c.std)}</td><td>{_cell(c.min)}</td><td>{_cell(c.p25)}</td><td>{_cell(c.median)}</td><td>{_cell(c.p75)}</td>"
            f'<td>{_cell(c.max)}</td><td class="l">{top}</td></tr>'
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data profile: {e(profile.dataset)}</title>
<style>{_CSS}</style></head><body>
<h1>Data profile: {e(profile.dataset)}</h1>
<p class="meta">source {e(profile.source)}</p>
<div class="cards">
<div class="card"><b>{profile.rows:,}</b>rows</div><div class="card"><b>{profile.columns}</b>columns</div>
<div class="card"><b>{profile.duplicate_rows}</b>duplicate rows</div>
<div class="card"><b>{profile.missing_total:,}</b>missing or "not measured" cells</div>
</div>
<h2>Target balance: {e(profile.target)}</h2>
<table style="width:auto"><tr><th class="l">label</th><th>rows</th><th class="l">share</th></tr>{balance}</table>
<h2>Columns</h2>
<table><tr><th class="l">column</th><th class="l">role</th><th class="l">dtype</th><th>missing</th>
<th>"not measured"</th><th>zeros</th><th class="l">missing + not measured</th><th>distinct</th><th>mean</th>
<th>std</th><th>min</th><th>25%</th><th>median</th><th>75%</th><th>max</th><th class="l">most frequent</th></tr>
{''.join(rows)}</table>
</body></html>
"""
