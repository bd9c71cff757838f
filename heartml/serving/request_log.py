"""The request log: one SQL row per scored patient (what was sent, what was answered, by which version), for
monitoring (`python run.py monitor`). SQLite by default, any SQLAlchemy URL; rows older than the retention are
deleted.

Rows are written by one background thread in batches, so a request never waits for the database: a slow or
locked database delays the log, not the answer. `flush()` waits for what is queued.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd
import sqlalchemy as sa

logger = logging.getLogger(__name__)

BATCH_ROWS = 500
PURGE_EVERY = timedelta(hours=1)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def engine_for(url: str, root: Path) -> sa.engine.Engine:
    """An engine; a relative SQLite path is taken under `root` and its folder created."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path = path if path.is_absolute() else root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    return sa.create_engine(parsed)


def request_table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False, index=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("decision_threshold", sa.Float, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("predicted_class", sa.SmallInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),  # the patient's fields as sent (JSON)
    )


def read_window(engine: sa.engine.Engine, table: str, since: datetime, until: Optional[datetime] = None,
                model_name: Optional[str] = None) -> pd.DataFrame:
    """The rows received in [since, until): each record's fields as columns, beside probability,
    predicted_class, model_name, model_version and received_at. Reads only (no writer, no table created): no
    table yet is no rows."""
    if not sa.inspect(engine).has_table(table):
        return pd.DataFrame()
    log = request_table(sa.MetaData(), table)
    query = sa.select(log).where(log.c.received_at >= since)
    if until is not None:
        query = query.where(log.c.received_at < until)
    if model_name is not None:
        query = query.where(log.c.model_name == model_name)
    with engine.connect() as connection:
        rows = pd.read_sql(query.order_by(log.c.id), connection)
    if rows.empty:
        return rows.drop(columns=["record"])
    records = pd.DataFrame.from_records([json.loads(text) for text in rows["record"]], index=rows.index)
    return pd.concat([records, rows.drop(columns=["record"])], axis=1)


class RequestLog:
    """Append scored patients, read a window back, delete what is older than `retention_days`."""

    def __init__(self, engine: sa.engine.Engine, table: str = "scored_requests", retention_days: float = 30):
        self.engine = engine
        self.retention = timedelta(days=retention_days)
        metadata = sa.MetaData()
        self.table = request_table(metadata, table)
        metadata.create_all(engine)
        self._queue: "queue.Queue[Optional[List[Dict[str, Any]]]]" = queue.Queue()
        self._last_purge = datetime.min.replace(tzinfo=timezone.utc)
        self._writer = threading.Thread(target=self._write_forever, name="request-log", daemon=True)
        self._writer.start()

    def append(self, request_id: str, model_name: str, model_version: str, decision_threshold: float,
               records: List[Dict[str, Any]], probabilities: List[float], classes: List[int]) -> None:
        """Queue one request's rows; returns at once."""
        received = _utc_now()
        self._queue.put([
            {"request_id": request_id, "received_at": received, "model_name": model_name,
             "model_version": model_version, "decision_threshold": decision_threshold, "probability": p,
             "predicted_class": c, "record": json.dumps(record, default=str, allow_nan=True)}
            for record, p, c in zip(records, probabilities, classes)
        ])

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=30)

    def purge(self, now: Optional[datetime] = None) -> int:
        """Delete rows received before now - retention; how many."""
        cutoff = (now or _utc_now()) - self.retention
        with self.engine.begin() as connection:
            deleted = connection.execute(self.table.delete().where(self.table.c.received_at < cutoff)).rowcount
        self._last_purge = now or _utc_now()
        return int(deleted or 0)

    def window(self, since: datetime, until: Optional[datetime] = None,
               model_name: Optional[str] = None) -> pd.DataFrame:
        return read_window(self.engine, self.table.name, since, until, model_name)

    def _write_forever(self) -> None:
        stop = False
        while not stop:
            batch = self._queue.get()
            taken = [batch]
            while len(taken) < BATCH_ROWS and taken[-1] is not None:  # what else is queued: one transaction
                try:
                    taken.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = taken[-1] is None
            rows = [row for request in taken if request is not None for row in request]
            try:
                if rows:
                    with self.engine.begin() as connection:
                        connection.execute(self.table.insert(), rows)
                if _utc_now() - self._last_purge >= PURGE_EVERY:
                    self.purge()
            except Exception as error:  # a database outage loses log rows, never answers; say so once per batch
                logger.warning("request log: %d rows not written (%s)", len(rows), type(error).__name__)
            finally:
                for _ in taken:
                    self._queue.task_done()
