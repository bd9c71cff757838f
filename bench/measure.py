"""Wall time and memory of a child process (and everything it starts), plus the machine the figures come from.

Memory is measured two ways:
- `peak_rss_process`: the kernel's own high-water mark (VmHWM in /proc/PID/status) of the largest single process
  among the child and its descendants (e.g. `run.py`, or one joblib / LIME worker), read at every sample: VmHWM
  only grows, so a process's peak is missed only if it comes after its last sample. Not ru_maxrss from wait4: a
  child starts with the high-water mark of the process that launched it (vfork + exec), so a 300 MiB child of a
  700 MiB pytest read 667 MiB.
- samples every `interval` seconds of the child's RSS (`main`) and of the memory of the child and all its
  descendants together (`tree`): the sum of their PSS (proportional set size), so a page that forked workers share
  with their parent counts once, not once per process as a sum of RSS would.

Reading a process's PSS makes the kernel walk its page tables: 36 ms for a 3.3 GiB `run.py` (10M rows), so sampling
every 0.1 s took a quarter of one of two cores, and more the larger the run, slowing what it measured. The sampler
waits at least `MAX_SAMPLER_SHARE`'s inverse times as long as its last sample took (10M rows: a sample every ~2 s).
"""

from __future__ import annotations

import os
import platform
import select
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import psutil

MIB = 2**20
MAX_SAMPLER_SHARE = 0.02  # of one core, at most, for the memory samples


@dataclass
class Sample:
    at: float  # epoch seconds
    main: int  # bytes, RSS of the child process itself
    tree: int  # bytes, PSS summed over the child and all its descendants


@dataclass
class Measured:
    command: List[str]
    returncode: int
    wall: float  # seconds
    peak_rss_process: int  # bytes (kernel high-water mark VmHWM, see the module docstring)
    stdout: str
    stderr: str
    samples: List[Sample] = field(default_factory=list)
    load_before: float = 0.0  # 1-minute load average when it started

    @property
    def peak_pss_tree(self) -> int:
        return max((s.tree for s in self.samples), default=0)

    def peaks_between(self, start: float, end: float) -> Dict[str, int]:
        """Peak sampled memory (main process RSS, process tree PSS) within [start, end] epoch seconds; for an
        interval shorter than the sampling interval, the sample nearest to it."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if not inside and self.samples:
            inside = [min(self.samples, key=lambda s: abs(s.at - (start + end) / 2))]
        return {"main": max((s.main for s in inside), default=0), "tree": max((s.tree for s in inside), default=0)}

    def check(self) -> "Measured":
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited {self.returncode}\n--- stdout\n"
                               f"{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-5000:]}")
        return self


def _high_water(process: psutil.Process) -> int:
    """VmHWM of one process, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss  # from /proc/PID/smaps_rollup: well under a millisecond
    except psutil.Error:
        return 0


def run_measured(command: Sequence[str], cwd: Path, env: Optional[Dict[str, str]] = None, interval: float = 0.1,
                 timeout: float = 3600) -> Measured:
    """Run `command` to completion, sampling its memory; output is captured (to files, so it can never block)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        process = psutil.Process(child.pid)
        exited = os.pidfd_open(child.pid)  # readable once the child has exited: the waits below end with it
        samples: List[Sample] = []
        high_water = 0
        try:
            while True:
                pid, status, _ = os.wait4(child.pid, os.WNOHANG)
                if pid:  # reaped here (not by Popen), so the exit status is this very child's
                    break
                sampling = time.perf_counter()
                try:
                    memory = process.memory_full_info()
                    descendants = process.children(recursive=True)
                    high_water = max(high_water, _high_water(process), *(_high_water(p) for p in descendants))
                    samples.append(Sample(at=time.time(), main=memory.rss,
                                          tree=memory.pss + sum(_pss(p) for p in descendants)))
                except psutil.Error:  # exiting right now
                    pass
                if time.perf_counter() - started > timeout:
                    child.kill()
                select.select([exited], [], [], max(interval, (time.perf_counter() - sampling) / MAX_SAMPLER_SHARE))
        finally:
            os.close(exited)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(command=list(command), returncode=child.returncode, wall=wall,
                        peak_rss_process=high_water, stdout=out.read(), stderr=err.read(),
                        samples=samples, load_before=load)


def machine() -> Dict[str, object]:
    """What the figures ran on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass
class Comparison:
    """Two ways of doing the same work, timed in alternating rounds; rates are of the median round of each."""

    items: int  # work items per round (patients, rows)
    reference_per_second: float
    ours_per_second: float
    load_before: float
    load_after: float

    @property
    def ratio(self) -> float:
        """Ours over the reference in speed (above 1: ours is faster)."""
        return self.ours_per_second / self.reference_per_second


def compare(rounds: int, items: int, reference: Callable[[], Any], ours: Callable[[], Any],
            names: Tuple[str, str] = ("reference", "ours")) -> Comparison:
    """Run both, `rounds` times, so a change in machine load hits both; which one goes first alternates between
    rounds (the second of a pair finds warm caches and an allocator that already holds the memory). Prints every
    round."""
    load_before = load_average()
    times: Tuple[List[float], List[float]] = ([], [])
    for number in range(1, rounds + 1):
        pair = [(reference, times[0]), (ours, times[1])]
        for run, spent in pair if number % 2 else pair[::-1]:
            started = time.perf_counter()
            run()
            spent.append(time.perf_counter() - started)
        print(f"  round {number}: " + "   ".join(f"{name} {items / spent[-1]:,.1f}/s" for name, spent in
                                                 zip(names, times)) + f"   ({times[0][-1] / times[1][-1]:.2f}x)",
              flush=True)
    reference_median, our_median = (statistics.median(spent) for spent in times)
    return Comparison(items, items / reference_median, items / our_median, load_before, load_average())
