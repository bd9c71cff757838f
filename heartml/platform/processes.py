"""Processes this project starts and later stops (Azurite, the MLflow UI), with psutil.

A saved process id is only signalled while it is still the process that was saved: same id, same start time and,
where given, a command line naming the program. A recycled id belongs to someone else and is never signalled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import psutil


@dataclass(frozen=True)
class SavedProcess:
    """What identifies a started process across runs of run.py: its id and its start time (seconds since epoch)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> "SavedProcess":
        return cls(pid=pid, create_time=psutil.Process(pid).create_time())

    def find(self, program: Optional[str] = None) -> Optional[psutil.Process]:
        """The live process, if it is still the one saved (and its command line names `program`)."""
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE or abs(process.create_time() - self.create_time) > 0.01:
                return None
            if program and not any(program in part for part in process.cmdline()):
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return process


def stop_process(process: psutil.Process, timeout: float, with_children: bool = False) -> None:
    """SIGTERM (and its children, e.g. an MLflow UI's gunicorn workers), then SIGKILL what is left after `timeout`."""
    try:
        targets = [*(process.children(recursive=True) if with_children else []), process]
    except psutil.NoSuchProcess:
        return
    for target in targets:
        try:
            target.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(targets, timeout=timeout)
    for target in alive:
        try:
            target.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
