"""heartml/platform/reliability.py: a real signal during a real SQLite statement, real signals to a real process,
real file locks. The pipeline-level faults are in tests/reliability/."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from heartml.platform import reliability
from heartml.platform.reliability import (
    SetupLockTimeout,
    concrete_run_name,
    release_sqlite_locks_on_interrupt,
    setup_lock,
)
from tests.conftest import ROOT

# About a second of work inside one sqlite3 call; the signal comes 0.3 s into it.
SLOW_QUERY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT sum(x) FROM c"


def _interrupt_a_statement(database) -> BaseException:
    """Write a row, then get KeyboardInterrupt from a real signal while a long SELECT of the same transaction
    runs, as Ctrl-C does when it lands in a store call. The exception is kept alive, as ZenML keeps it."""
    engine = sa.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0.5})
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt  # what Python's own SIGINT handler does

    previous = signal.signal(signal.SIGALRM, raise_interrupt)
    try:
        with Session(engine) as session:
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            session.execute(sa.text(SLOW_QUERY))
    except KeyboardInterrupt as interrupt:
        caught = interrupt
    else:
        pytest.fail("the statement ended before the signal came")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # It landed inside the statement's execution, not somewhere around it.
    assert "do_execute" in [frame.name for frame in traceback.extract_tb(caught.__traceback__)]
    return caught


def _write_from_another_connection(database) -> int:
    engine = sa.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0.5})
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        return connection.exec_driver_sql("SELECT count(*) FROM t").scalar()


@pytest.fixture
def without_the_fix():
    listening = event.contains(Engine, "handle_error", reliability._close_interrupted_cursor)
    if listening:
        event.remove(Engine, "handle_error", reliability._close_interrupted_cursor)
    yield
    if listening:
        release_sqlite_locks_on_interrupt()


def test_an_interrupted_statement_keeps_sqlite_locked_without_the_fix(tmp_path, without_the_fix):
    """Why the fix exists: SQLAlchemy leaves the interrupted cursor open and sqlite3 keeps its lock."""
    kept = _interrupt_a_statement(tmp_path / "store.db")  # noqa: F841 - alive, like ZenML's chained exceptions
    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        _write_from_another_connection(tmp_path / "store.db")


def test_an_interrupted_statement_rolls_back_and_releases_the_lock(tmp_path):
    release_sqlite_locks_on_interrupt()
    release_sqlite_locks_on_interrupt()  # idempotent
    kept = _interrupt_a_statement(tmp_path / "store.db")  # noqa: F841
    # Written without waiting for a lock (0.5 s busy timeout); the interrupted transaction's row is gone.
    assert _write_from_another_connection(tmp_path / "store.db") == 1


GUARDED_SLEEP = textwrap.dedent("""
    import signal, sys, time
    from heartml.platform.reliability import InterruptGuard

    guard = InterruptGuard()
    try:
        with guard:
            print("ready", flush=True)
            time.sleep(60)
    except KeyboardInterrupt:
        ignored_again = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        print("interrupted", guard.signal_name, "ignored again" if ignored_again else "", flush=True)
        sys.exit(guard.exit_code)
""")


@pytest.mark.parametrize("signum, name, code", [(signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143)])
@pytest.mark.parametrize("started_with_sigint_ignored", [False, True], ids=["from a terminal", "as a background job"])
def test_guard_turns_sigint_and_sigterm_into_an_interrupt_with_the_shell_exit_code(signum, name, code,
                                                                                  started_with_sigint_ignored):
    # A shell script's background job starts with SIGINT ignored; ZenML's step handler takes SIGINT anyway, so the
    # guard makes it interrupt there too, and gives the ignored disposition back after.
    ignore = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if started_with_sigint_ignored else ""
    process = subprocess.Popen([sys.executable, "-c", ignore + GUARDED_SLEEP], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signum)
    output, _ = process.communicate(timeout=30)
    restored = " ignored again" if started_with_sigint_ignored else ""
    assert (process.returncode, output.rstrip()) == (code, f"interrupted {name}{restored}")


STUCK_THREAD_EXIT = textwrap.dedent("""
    import sys, threading
    from heartml.platform.reliability import exit_within

    # A non-daemon thread nobody will stop: a ThreadPoolExecutor worker that KeyboardInterrupt cut off from the
    # executor's shutdown list. Python's exit waits for it.
    threading.Thread(target=threading.Event().wait, name="orphaned worker").start()
    exit_within({seconds}, 130)
    sys.exit(130)
""")


def test_exit_within_ends_a_process_whose_exit_waits_for_a_stuck_thread():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", STUCK_THREAD_EXIT.format(seconds=0.5)], cwd=ROOT, timeout=30)
    assert result.returncode == 130
    assert time.monotonic() - started < 20
    # The same exit without the bound would wait for ever (here: until the timeout).
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", STUCK_THREAD_EXIT.format(seconds=3600)], cwd=ROOT, timeout=5)


def test_setup_lock_makes_a_second_process_wait_and_says_for_what(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from heartml.platform.reliability import "
         f"setup_lock\nwith setup_lock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SetupLockTimeout, match=f"another run.py has been setting up the ZenML store in {tmp_path}"):
            with setup_lock(tmp_path, timeout_seconds=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
    with setup_lock(tmp_path, timeout_seconds=5):  # released when its holder died
        pass


def test_setup_lock_is_taken_in_turn_by_threads(tmp_path):
    inside, overlaps = [], []

    def work():
        with setup_lock(tmp_path, timeout_seconds=30):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [0, 0, 0, 0]


def test_concrete_run_name_fills_in_date_and_time_now():
    name = concrete_run_name({"run_name": "training_{date}_{time}"}, "training_pipeline")
    assert name.startswith(f"training_{time.strftime('%Y_%m', time.gmtime())}") and "{" not in name
    assert concrete_run_name({}, "training_pipeline").startswith("training_pipeline-")
    assert concrete_run_name({"run_name": "nightly_{team}", "substitutions": {"team": "cardio"}}, "p") == \
        "nightly_cardio"


def test_zenml_config_files_are_replaced_whole_while_another_process_reads_them(tmp_path):
    """ZenML rewrites .zen/config.yaml at every client start; a run starting beside it must never read it empty."""
    from zenml.utils import yaml_utils

    from heartml.platform.reliability import atomic_zenml_config_writes

    config = tmp_path / "config.yaml"
    contents = {"active_stack_id": "5f0c" * 8, "active_project_id": "9e1d" * 8, "padding": ["x" * 100] * 50}
    yaml_utils.write_yaml(str(config), contents)
    config.chmod(0o600)
    original = yaml_utils.write_yaml
    atomic_zenml_config_writes()
    atomic_zenml_config_writes()  # idempotent
    try:
        assert yaml_utils.write_yaml is not original
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            from heartml.platform.reliability import atomic_zenml_config_writes
            from zenml.utils import yaml_utils
            atomic_zenml_config_writes()
            for _ in range(400):
                yaml_utils.write_yaml({str(config)!r}, {contents!r})
        """)])
        reads = []
        while writer.poll() is None:
            reads.append(yaml_utils.read_yaml(str(config)))
        assert writer.returncode == 0 and len(reads) > 10
        assert all(read == contents for read in reads), [read for read in reads if read != contents][:1]
        assert config.stat().st_mode & 0o777 == 0o600  # the file keeps its permissions
        assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no temporary file left
    finally:
        yaml_utils.write_yaml = original
