"""The serving request log on a real SQLite file: background writes, the window read back, retention."""

from datetime import datetime, timedelta, timezone

import sqlalchemy

from heartml.serving.request_log import RequestLog, engine_for


def test_rows_are_written_in_the_background_read_back_and_purged(tmp_path):
    log = RequestLog(engine_for("sqlite:///log/requests.db", tmp_path), retention_days=1)
    assert (tmp_path / "log" / "requests.db").exists()  # relative to the root given
    records = [{"Age": 50.0, "Sex": "M"}, {"Age": 61.0, "Sex": "F"}]
    log.append("r1", "m", "3", 0.4, records, [0.2, 0.7], [0, 1])
    log.flush()
    window = log.window(datetime.now(timezone.utc) - timedelta(minutes=1), model_name="m")
    assert window[["Age", "Sex", "probability", "predicted_class", "model_version"]].to_dict("records") == [
        {"Age": 50.0, "Sex": "M", "probability": 0.2, "predicted_class": 0, "model_version": "3"},
        {"Age": 61.0, "Sex": "F", "probability": 0.7, "predicted_class": 1, "model_version": "3"}]
    assert log.window(datetime.now(timezone.utc) - timedelta(minutes=1), model_name="other").empty
    assert log.purge(now=datetime.now(timezone.utc) + timedelta(hours=23)) == 0
    assert log.purge(now=datetime.now(timezone.utc) + timedelta(days=1, minutes=1)) == 2
    with log.engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("select count(*) from scored_requests")).scalar() == 0
    log.close()


def test_a_database_outage_loses_log_rows_not_answers(tmp_path, caplog):
    log = RequestLog(engine_for(f"sqlite:///{tmp_path / 'requests.db'}", tmp_path))
    with log.engine.begin() as connection:
        connection.execute(sqlalchemy.text("drop table scored_requests"))
    log.append("r1", "m", "1", 0.5, [{"Age": 50.0}], [0.2], [0])  # returns at once
    log.flush()
    assert "request log: 1 rows not written (OperationalError)" in caplog.text
    assert "50.0" not in caplog.text  # never a patient's values
    log.close()
