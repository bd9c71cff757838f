"""Data versions: a content hash that is stable across file formats and row order is part of the data."""

from __future__ import annotations

import hashlib

import pandas as pd
from pydantic import BaseModel


class DataVersion(BaseModel):
    """What identifies the data a model was trained on."""

    data_hash: str
    source: str
    dataset: str
    rows: int
    columns: int


def frame_fingerprint(df: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and a per-row hash of the values (index ignored)."""
    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()
