"""Data and code versions: a content hash that is stable across file formats and row order is part of the data;
per-row hashes say which patients a model was trained on; the git commit of the code."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel

from heartml.core.errors import DataSourceError


class DataVersion(BaseModel):
    """What identifies the data a model was trained on."""

    data_hash: str
    source: str
    dataset: str
    rows: int
    columns: int

    @classmethod
    def of(cls, frame: pd.DataFrame, source: str, dataset: str) -> "DataVersion":
        """The version of `frame`, read from `source` (as shown: no secrets) for the dataset named `dataset`."""
        return cls(data_hash=frame_fingerprint(frame), source=source, dataset=dataset, rows=len(frame),
                   columns=frame.shape[1])


def frame_fingerprint(df: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and a per-row hash of the values (index ignored)."""
    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    try:
        rows = pd.util.hash_pandas_object(df, index=False)
    except TypeError:  # values pandas cannot hash (a Parquet list column): their text, so validation can name them
        text = [column for column in df.columns if df[column].dtype == object]
        rows = pd.util.hash_pandas_object(df.astype(dict.fromkeys(text, str)), index=False)
    digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()


def check_data_unchanged(data_hash: str, expected: Optional[str], source: str) -> None:
    """Raise if the data read now is not the data checked before the run (`expected`, from run.py's preflight):
    the ingestion step is cached on that hash, so its outputs must hold exactly that data."""
    if expected is not None and data_hash != expected:
        raise DataSourceError(f"{source}: the data changed after the run's data check (data hash {expected[:12]} "
                              f"then, {data_hash[:12]} now); nothing was trained: run the command again")


def row_hashes(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One 64-bit content hash per row over `columns` (a patient's record; index, order and dtype width ignored):
    numbers are hashed as float64 and everything else as text, so 50 and 50.0 or int8 and int64 give one hash."""
    normalized = pd.DataFrame({
        column: (pd.to_numeric(df[column], errors="coerce").astype("float64")
                 if pd.api.types.is_numeric_dtype(df[column]) else df[column].astype("string"))
        for column in columns
    })
    return pd.util.hash_pandas_object(normalized, index=False).to_numpy(dtype=np.uint64)


def source_commit(path: Path) -> Optional[str]:
    """The git commit of the code at `path` (`-dirty` with uncommitted changes), or None outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None
