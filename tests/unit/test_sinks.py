"""Prediction sinks: CSV, Parquet, a real SQLite table through SQLAlchemy; all-or-nothing writes."""

from datetime import datetime, timezone

import pandas as pd
import pytest
import sqlalchemy

import heartml.core.sinks as sinks
from heartml.core.errors import InputError
from heartml.core.sinks import parse_sink, write_predictions


@pytest.fixture
def predictions() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P2", "P3"],
        "Age": [40, 63, 55],
        "probability": [0.12, 0.87, 0.51],
        "predicted_class": pd.Series([0, 1, 1], dtype="int8"),
        "model_version": ["4", "4", "4"],
        "scored_at": [datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)] * 3,
    })


@pytest.mark.parametrize("uri, kind", [
    ("out/p.csv", "csv"), ("file:///tmp/p.parquet", "parquet"), ("az://container/p.parquet", "parquet"),
    ("sqlite:///p.db", "sql"), ("postgresql://user:secret@db/clinic", "sql"),
])
def test_sink_kind_follows_the_uri(uri, kind):
    assert parse_sink(uri).kind == kind


def test_unsupported_outputs_fail_before_any_work():
    with pytest.raises(InputError, match="unsupported output"):
        parse_sink("predictions.xlsx")
    with pytest.raises(InputError, match="not a plain identifier"):
        parse_sink("sqlite:///p.db", table="x; drop table y")


def test_sql_password_is_not_echoed():
    assert "secret" not in parse_sink("postgresql://user:secret@db/clinic").describe()


@pytest.mark.parametrize("name, read", [("p.csv", pd.read_csv), ("p.parquet", pd.read_parquet)])
def test_file_sinks_replace_the_file(tmp_path, predictions, name, read):
    target = tmp_path / "nested" / name
    for _ in range(2):
        report = write_predictions(predictions, parse_sink(str(target)))
    back = read(target)
    assert report.rows == 3 and len(back) == 3
    assert back["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert back["probability"].tolist() == [0.12, 0.87, 0.51]
    assert [p.name for p in target.parent.iterdir()] == [name]


def test_sqlite_sink_appends_rows_in_a_real_database(tmp_path, predictions):
    uri = f"sqlite:///{tmp_path}/predictions.db"
    write_predictions(predictions, parse_sink(uri, table="risk"))
    report = write_predictions(predictions.assign(model_version="5"), parse_sink(uri, table="risk"))
    engine = sqlalchemy.create_engine(uri)
    back = pd.read_sql_table("risk", engine)
    engine.dispose()
    assert report.destination.startswith("table 'risk' of sqlite:///") and report.rows == 3
    assert len(back) == 6
    assert back.groupby("model_version")["patient_id"].count().to_dict() == {"4": 3, "5": 3}
    assert back["probability"].sum() == pytest.approx(2 * (0.12 + 0.87 + 0.51))


def test_a_failed_sql_write_leaves_no_rows(tmp_path, predictions):
    uri = f"sqlite:///{tmp_path}/predictions.db"
    write_predictions(predictions, parse_sink(uri))
    broken = predictions.assign(Age=[41, object(), 56])  # the second row cannot be bound
    with pytest.raises(Exception):  # noqa: B017 - whichever error the database driver raises
        write_predictions(broken, parse_sink(uri))
    engine = sqlalchemy.create_engine(uri)
    assert pd.read_sql_table("predictions", engine)["Age"].tolist() == [40, 63, 55]
    engine.dispose()


def test_a_failed_file_write_leaves_no_file(tmp_path, predictions, monkeypatch):
    def half_written(frame, path, kind):
        with open(path, "w") as handle:
            handle.write("patient_id,Age\nP1,")
        raise OSError("disk full")

    monkeypatch.setattr(sinks, "_write_file", half_written)
    with pytest.raises(OSError):
        write_predictions(predictions, parse_sink(str(tmp_path / "p.csv")))
    assert list(tmp_path.iterdir()) == []
