"""Seeded synthetic patients with the real schema, for scale tests: a Gaussian copula fitted to a real frame.

Per target class, each column is mapped to normal scores through its empirical distribution; the correlation
of those scores is estimated; new rows are drawn from that multivariate normal and mapped back through each
column's empirical quantiles (numeric) or category cut points (categorical). Marginals are reproduced exactly in
the limit, and pairwise rank correlations, including those with the target, approximately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import pandas as pd
from scipy import stats


@dataclass
class _Column:
    name: str
    categorical: bool
    # numeric: sorted observed values (quantile function); categorical: categories and cumulative shares
    values: np.ndarray
    cumulative: np.ndarray | None = None
    dtype: str = "float64"


@dataclass
class CopulaModel:
    columns: List[_Column]
    correlation: np.ndarray


def _normal_scores(series: pd.Series, rng: np.random.Generator) -> np.ndarray:
    # Random tie-breaking keeps discrete columns from collapsing onto a few normal scores.
    ranks = stats.rankdata(series.to_numpy() + rng.uniform(0, 1e-6, len(series)) if series.dtype.kind in "if"
                           else series.astype(str).to_numpy(), method="ordinal")
    return stats.norm.ppf(ranks / (len(series) + 1))


def fit_copula(df: pd.DataFrame, seed: int = 0) -> CopulaModel:
    rng = np.random.default_rng(seed)
    columns, scores = [], []
    for name in df.columns:
        series = df[name].dropna()
        if len(series) < len(df):
            series = df[name].fillna(series.median() if series.dtype.kind in "if" else series.mode()[0])
        else:
            series = df[name]
        if series.dtype.kind in "if":
            columns.append(_Column(name, False, np.sort(series.to_numpy(dtype="float64")), dtype=str(df[name].dtype)))
            scores.append(_normal_scores(series, rng))
        else:
            shares = series.value_counts(normalize=True).sort_index()
            columns.append(_Column(name, True, shares.index.to_numpy(dtype=object), np.cumsum(shares.to_numpy())))
            # Order categories by label so that the cut points below invert this mapping.
            codes = pd.Categorical(series, categories=shares.index).codes
            scores.append(_normal_scores(pd.Series(codes + rng.uniform(0, 0.5, len(codes))), rng))
    correlation = np.corrcoef(np.vstack(scores))
    return CopulaModel(columns, correlation)


def sample(model: CopulaModel, n_rows: int, seed: int = 0, chunk_rows: int = 250_000) -> pd.DataFrame:
    """n_rows synthetic rows; generated in chunks so 1M rows stay within a few hundred MB."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(model.correlation + 1e-9 * np.eye(len(model.columns)))
    parts: Dict[str, List[np.ndarray]] = {c.name: [] for c in model.columns}
    remaining = n_rows
    while remaining > 0:
        rows = min(chunk_rows, remaining)
        uniforms = stats.norm.cdf(rng.standard_normal((rows, len(model.columns))) @ chol.T)
        for j, column in enumerate(model.columns):
            u = uniforms[:, j]
            if column.categorical:
                index = np.minimum(np.searchsorted(column.cumulative, u), len(column.values) - 1)
                parts[column.name].append(column.values[index])
            else:
                positions = u * (len(column.values) - 1)
                parts[column.name].append(column.values[np.rint(positions).astype(np.int64)])
        remaining -= rows
    frame = {}
    for column in model.columns:
        values = np.concatenate(parts[column.name])
        frame[column.name] = values if column.categorical else values.astype(column.dtype)
    return pd.DataFrame(frame)


def synthetic_patients(real: pd.DataFrame, n_rows: int, target: str, seed: int = 0) -> pd.DataFrame:
    """`n_rows` rows with the columns and dtypes of `real`: one copula per target class, so every feature keeps
    its class-conditional distribution (a single copula attenuates correlations with a binary target)."""
    rng = np.random.default_rng(seed)
    shares = real[target].value_counts(normalize=True).sort_index()
    counts = rng.multinomial(n_rows, shares.to_numpy())
    parts = []
    for offset, (label, count) in enumerate(zip(shares.index, counts)):
        rows = real[real[target] == label].drop(columns=[target])
        part = sample(fit_copula(rows, seed + offset), int(count), seed + offset)
        part[target] = np.full(int(count), label, dtype=real[target].dtype)
        parts.append(part)
    combined = pd.concat(parts, ignore_index=True)
    order = rng.permutation(len(combined))
    return combined.iloc[order].reset_index(drop=True)[list(real.columns)]
