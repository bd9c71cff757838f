"""Where predictions go, chosen by URI: a CSV or Parquet file (local path or fsspec URL such as az://), or a SQL
table through SQLAlchemy (sqlite:///file.db, postgresql://..., mssql+pyodbc://...).

Writes are all-or-nothing: local files are written beside the target and renamed into place, SQL rows are
inserted in one transaction, blob uploads only appear once complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel

from heartml.core.errors import InputError
from heartml.core.sources import display_uri

FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class Sink(BaseModel):
    kind: Literal["csv", "parquet", "sql"]
    uri: str
    table: str = "predictions"  # SQL only

    @property
    def is_local_file(self) -> bool:
        return self.kind != "sql" and ("://" not in self.uri or self.uri.startswith("file://"))

    @property
    def local_path(self) -> Path:
        return Path(self.uri.removeprefix("file://"))

    def describe(self) -> str:
        return f"table {self.table!r} of {display_uri(self.uri)}" if self.kind == "sql" else self.uri


class SinkReport(BaseModel):
    kind: str
    destination: str
    rows: int


def parse_sink(uri: str, table: str = "predictions") -> Sink:
    """The sink a URI names; an InputError for anything else, before any work is done."""
    suffix = Path(uri.split("?")[0]).suffix.lower()
    if suffix in FILE_FORMATS:
        return Sink(kind=FILE_FORMATS[suffix], uri=uri)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(uri).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise InputError(f"{uri}: unsupported output: use a .csv or .parquet file, or a SQLAlchemy URL such as "
                         f"sqlite:///predictions.db") from None
    if not table.isidentifier():
        raise InputError(f"{uri}: table name {table!r} is not a plain identifier")
    return Sink(kind="sql", uri=uri, table=table)


def write_predictions(frame: pd.DataFrame, sink: Sink) -> SinkReport:
    """Write the whole frame or nothing: files are replaced, SQL rows are appended to the table."""
    if sink.kind == "sql":
        from sqlalchemy import create_engine

        engine = create_engine(sink.uri)
        try:
            with engine.begin() as connection:
                frame.to_sql(sink.table, connection, if_exists="append", index=False)
        finally:
            engine.dispose()
    elif sink.is_local_file:
        target = sink.local_path
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(handle)
        try:
            _write_file(frame, partial, sink.kind)
            os.replace(partial, target)
        finally:
            Path(partial).unlink(missing_ok=True)
    else:
        _write_file(frame, sink.uri, sink.kind)
    return SinkReport(kind=sink.kind, destination=sink.describe(), rows=len(frame))


def _write_file(frame: pd.DataFrame, path: str, kind: str) -> None:
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
