"""Processes this project starts and later stops (Azurite, the MLflow UI), with psutil.

A saved process id is only signalled while it is still the process that was saved: same id, same start time and,
where given, a command line naming the program. A recycled id belongs to someone else and is never signalled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional

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
    alive = _wait_until_gone(targets, timeout)
    for target in alive:
        try:
            target.kill()
        except psutil.NoSuchProcess:
            pass
    _wait_until_gone(alive, 5)


def _wait_until_gone(processes: List[psutil.Process], timeout: float) -> List[psutil.Process]:
    """The processes still running after at most `timeout` s. An exited process counts as gone even while it waits,
    a zombie, for a parent that is not this process to reap it (a server a test session restarted: psutil's
    wait_procs waited for it until its timeout, 15 to 35 s per `stack down`); this process's own are reaped."""
    deadline = time.monotonic() + timeout
    alive = processes
    while True:
        _, alive = psutil.wait_procs(alive, timeout=0.05)
        alive = [process for process in alive if _running(process)]
        if not alive or time.monotonic() >= deadline:
            return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
