"""Runs that end early or overlap: Ctrl-C and SIGTERM without leaving the SQLite stores locked; a setup lock so that
several `run.py` on one machine can share a fresh local ZenML store; ZenML's config files replaced whole, never
read half-written; and the clean-up after a run.py that was killed.

Ctrl-C raises KeyboardInterrupt wherever the main thread is, often inside a SQLAlchemy statement on the local
ZenML or MLflow store (ZenML's own step signal handler ends by calling Python's, which raises it). SQLAlchemy treats
KeyboardInterrupt as an "exit exception": it discards the connection but leaves the interrupted statement's cursor
open, and sqlite3 then keeps that connection's lock for as long as the cursor lives (the traceback holds it). Every
later write waits out the 60 s busy timeout and fails with "database is locked", so ZenML cannot mark the step or
the run failed and both stay `running`. `release_sqlite_locks_on_interrupt` closes that cursor.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type
from urllib.parse import quote, unquote
from uuid import UUID

from filelock import FileLock, Timeout
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

from heartml.core.errors import InputError

# Ctrl-C, and what supervisors (systemd, Docker, CI time limits) send to stop a process.
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _close_interrupted_cursor(context: ExceptionContext) -> None:
    if isinstance(context.original_exception, Exception):
        return  # ordinary errors: SQLAlchemy closes the cursor and rolls back itself
    cursor = getattr(context.execution_context, "cursor", None)
    if cursor is not None:
        try:
            cursor.close()  # finalizes the statement: sqlite3 can then really close the connection, rolling back
        except Exception:  # noqa: BLE001 - the interruption, not this, is what the caller must see
            pass


def release_sqlite_locks_on_interrupt() -> None:
    """For every SQLAlchemy engine of this process (ZenML's store, MLflow's): a statement interrupted by
    KeyboardInterrupt (or another BaseException) has its cursor closed, so its transaction rolls back and the
    database lock is released at once. Idempotent."""
    if not event.contains(Engine, "handle_error", _close_interrupted_cursor):
        event.listen(Engine, "handle_error", _close_interrupted_cursor)


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class InterruptGuard:
    """While active, SIGTERM interrupts like Ctrl-C (KeyboardInterrupt), and the guard remembers which of the two
    arrived, so the caller can exit with the shell's code for it (130 for SIGINT, 143 for SIGTERM).

    Which signal arrived is read from a wakeup pipe, not from a handler of the guard's own: SIGINT keeps Python's
    handler, and while a step runs ZenML's handler takes both signals first (it then calls the previous one,
    except for a signal that lands while it is being installed).

    A process started with SIGINT ignored (a background job of a shell script) gets Python's handler too: ZenML's
    handler takes SIGINT during every step anyway, and with nothing to call after it raises only its own
    RunInterruptedException, an ordinary Exception that MLflow and SQLAlchemy code catch, so the run mostly went on
    to exit 0.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous_handlers: Dict[int, Any] = {}
        self._previous_wakeup_fd = -1
        self._pipe: Optional[Tuple[int, int]] = None

    @property
    def interrupted(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention for a process stopped by a signal."""
        return 128 + (self.signum or 0)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> "InterruptGuard":
        release_sqlite_locks_on_interrupt()
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._pipe = os.pipe()
            for fd in self._pipe:
                os.set_blocking(fd, False)
            self._previous_wakeup_fd = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
            self._previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _interrupt)
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                self._previous_handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers.clear()
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        try:
            arrived = os.read(self._pipe[0], 1024)
        except BlockingIOError:
            arrived = b""
        for fd in self._pipe:
            os.close(fd)
        self._pipe = None
        self.signum = next((number for number in arrived if number in HANDLED_SIGNALS), None)


# What an interrupted run.py's exit may take: ZenML's and MLflow's exit handlers flush logs in about a second.
INTERRUPTED_EXIT_SECONDS = 15.0


def exit_within(seconds: float, code: int) -> None:
    """End the process with `code` if it is still alive `seconds` from now. After an interruption Python's exit waits
    for every non-daemon thread, and KeyboardInterrupt can land between a ThreadPoolExecutor starting a worker and
    registering it for shutdown (MLflow's artifact uploads use one): that worker then waits for work forever, and so
    did the exit (reproduced). Called only on the way out; a normal exit ends long before."""

    def end() -> None:
        time.sleep(seconds)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the exit code is what matters now
                pass
        os._exit(code)

    threading.Thread(target=end, name="exit-within", daemon=True).start()


class SetupLockTimeout(InputError):
    """Another `run.py` kept the setup lock too long."""


def atomic_zenml_config_writes() -> None:
    """ZenML rewrites its YAML files in place (the checkout's .zen/config.yaml on every client start, the global
    config): a run starting at that moment in the same checkout read an empty file and failed. Local files are
    written to a temporary file beside them and renamed over them, which readers see whole (idempotent)."""
    import yaml
    from zenml.utils import io_utils, yaml_utils

    original = yaml_utils.write_yaml
    if getattr(original, "replaces_whole_file", False):
        return

    def write_yaml(file_path: str, contents: Any, sort_keys: bool = True) -> None:
        if io_utils.is_remote(file_path):
            return original(file_path, contents, sort_keys=sort_keys)
        path = Path(file_path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"Directory {path.parent} does not exist.")
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(yaml.dump(contents, sort_keys=sort_keys))
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    write_yaml.replaces_whole_file = True  # type: ignore[attr-defined]
    yaml_utils.write_yaml = write_yaml


@contextmanager
def setup_lock(folder: Path, timeout_seconds: float = 300.0) -> Iterator[None]:
    """One process at a time sets up the local ZenML store (creating and migrating its database, which ZenML
    does not guard against a second process) and registers stacks. The lock lives in `folder`, normally ZenML's
    local stores folder, so processes that share a store share the lock; the OS releases it if its holder dies.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ".heartml-setup.lock", timeout=timeout_seconds)
    try:
        with lock:
            yield
    except Timeout as exc:
        raise SetupLockTimeout(f"another run.py has been setting up the ZenML store in {folder} for more than "
                               f"{timeout_seconds:.0f} s (lock file {lock.lock_file}); try again when it is done"
                               ) from exc


# Killed runs. A run executed in-process by the local orchestrator stays `running` in the ZenML store (and its MLflow
# run RUNNING) when its process is killed outright: nothing is left to record the end. run.py therefore holds a lock
# file named after the run while it executes it; the OS releases the lock when the process dies, however it dies, so
# the next run.py can tell a killed run from one that is still going, and close it.

KILLED_REASON = "the run.py process executing this run was killed before the run finished"


def concrete_run_name(config: Dict[str, Any], pipeline_name: str) -> str:
    """The run name ZenML would give a run of this config, fixed now (`{date}`, `{time}` filled in), so that
    run.py knows it before the run exists."""
    from zenml.pipelines.run_utils import get_default_run_name
    from zenml.utils.string_utils import format_name_template

    template = config.get("run_name") or get_default_run_name(pipeline_name)
    return format_name_template(template, substitutions=config.get("substitutions") or {})


def _markers(stores: Path, store_url: str) -> Path:
    """One folder of run markers per ZenML store."""
    return stores / "heartml-runs" / hashlib.sha256(store_url.encode()).hexdigest()[:16]


@contextmanager
def run_marker(stores: Path, store_url: str, run_name: str) -> Iterator[None]:
    """Held while this process executes the run named `run_name` on the store at `store_url`."""
    folder = _markers(stores, store_url)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{quote(run_name, safe='')}.lock"
    with FileLock(path, timeout=0):  # a fresh run name: nobody else holds it
        yield
    # Kept after an error or interruption: the next run.py checks that ZenML did record the run's end.
    path.unlink(missing_ok=True)


def close_killed_runs(stores: Path, store_url: str, mlflow_client: Any = None) -> List[str]:
    """Runs whose run.py was killed (their marker is no longer locked): unfinished steps and the run are marked
    failed in ZenML with the reason, and the run's MLflow run KILLED. One line per run closed."""
    folder = _markers(stores, store_url)
    lines: List[str] = []
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            continue  # its process is alive
        try:
            lines += _close_killed_run(unquote(path.name.removesuffix(".lock")), mlflow_client)
        finally:
            lock.release()
            path.unlink(missing_ok=True)
    return lines


def _close_killed_run(run_name: str, mlflow_client: Any) -> List[str]:
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.orchestrators.publish_utils import publish_pipeline_run_status_update, publish_step_run_status_update

    try:
        run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
    except KeyError:
        return []  # killed before the run was created
    if run.status.is_finished:
        return []
    was = run.status.value
    for step in run.steps.values():
        if not step.status.is_finished:
            publish_step_run_status_update(step.id, ExecutionStatus.FAILED)
    publish_pipeline_run_status_update(run.id, ExecutionStatus.FAILED, status_reason=KILLED_REASON)
    if mlflow_client is not None and "'" not in run_name:
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        for mlflow_run in mlflow_client.search_runs(
                experiments, filter_string=f"attributes.run_name = '{run_name}' and attributes.status = 'RUNNING'"):
            mlflow_client.set_terminated(mlflow_run.info.run_id, status="KILLED")
    return [f"run {run_name} was left {was!r} by a run.py that was killed: marked failed"]


def abandon_pending_versions(mlflow_client: Any) -> List[str]:
    """Model versions still `pending` although the ZenML run that registered them has finished (interrupted,
    killed, failed before its promotion step): tagged `abandoned`, so nobody waits for them. They were never given
    an alias nor served either way. Versions whose run this ZenML store does not know are left alone."""
    from zenml.client import Client

    from heartml.registry.model_versions import ABANDONED, PENDING, STATUS_TAG, ZENML_RUN_ID_TAG

    lines = []
    for version in mlflow_client.search_model_versions(f"tags.{STATUS_TAG} = '{PENDING}'"):
        try:
            run = Client().get_pipeline_run(UUID(version.tags.get(ZENML_RUN_ID_TAG, "")), hydrate=False)
        except (KeyError, ValueError):
            continue
        if run.status.is_finished:
            mlflow_client.set_model_version_tag(version.name, version.version, STATUS_TAG, ABANDONED)
            lines.append(f"model {version.name} version {version.version}: registration never completed "
                         f"(run {run.name} {run.status.value}): marked {ABANDONED}")
    return lines
