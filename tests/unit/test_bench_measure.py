"""bench/measure.py: the memory and time figures of a child process are what the child did."""

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import measure  # noqa: E402
from measure import MIB, Measured, Sample, run_measured  # noqa: E402

# Held 3 s: the sampler must see the whole block at least once (a CI machine at load 2.7 missed it in 1 s).
HOLD_300_MIB = "import time; block = bytearray(300 * 2**20); time.sleep(3.0)"
FORK_A_WORKER = """
import os, time
block = bytearray(200 * 2**20)          # touched: 200 MiB resident in the parent
pid = os.fork()
if pid == 0:
    time.sleep(1.0)                     # the worker shares those pages, writes none
    os._exit(0)
time.sleep(1.0)
os.waitpid(pid, 0)
"""


def test_peak_memory_and_wall_time_of_a_child(tmp_path):
    measured = run_measured([sys.executable, "-c", HOLD_300_MIB], cwd=tmp_path, interval=0.05)
    assert measured.returncode == 0
    assert 3.0 <= measured.wall < 30
    assert 300 * MIB <= measured.peak_rss_process < 600 * MIB  # the kernel's high-water mark
    assert 300 * MIB <= max(s.main for s in measured.samples) < 600 * MIB


def test_a_child_of_a_big_process_reads_its_own_peak(tmp_path):
    """ru_maxrss would start at the launcher's high-water mark (vfork + exec): 700 MiB here."""
    ballast = bytearray(700 * MIB)
    measured = run_measured([sys.executable, "-c", HOLD_300_MIB], cwd=tmp_path, interval=0.05)
    assert len(ballast) == 700 * MIB
    assert 300 * MIB <= measured.peak_rss_process < 600 * MIB


def test_pages_shared_with_a_forked_worker_count_once(tmp_path):
    measured = run_measured([sys.executable, "-c", FORK_A_WORKER], cwd=tmp_path, interval=0.05)
    assert measured.returncode == 0
    # RSS summed over both processes would be over 400 MiB; PSS splits the shared pages between them.
    assert 200 * MIB <= measured.peak_pss_tree < 330 * MIB


def test_a_failing_child_is_reported_with_its_output(tmp_path):
    measured = run_measured([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                            cwd=tmp_path)
    assert measured.returncode == 3 and "boom" in measured.stderr
    with pytest.raises(RuntimeError, match="exited 3"):
        measured.check()


def test_peaks_of_a_step_come_from_its_own_interval():
    measured = Measured(command=["x"], returncode=0, wall=3, peak_rss_process=0, stdout="", stderr="",
                        samples=[Sample(at=t, main=m, tree=2 * m) for t, m in ((1.0, 10), (2.0, 50), (3.0, 20))])
    assert measured.peaks_between(1.5, 3.0) == {"main": 50, "tree": 100}
    assert measured.peaks_between(2.9, 3.05) == {"main": 20, "tree": 40}
    assert measured.peaks_between(1.1, 1.2) == {"main": 10, "tree": 20}  # shorter than a sampling interval


def test_the_sampler_waits_in_proportion_to_what_a_sample_costs_and_not_past_the_child(tmp_path, monkeypatch):
    """A sample walks the child's page tables (36 ms for a 3.3 GiB run.py): the sampler keeps to its share of a core,
    and the wall time still ends when the child does, not after the sampler's wait."""
    sleep_2s = [sys.executable, "-c", "import time; time.sleep(2.0)"]
    monkeypatch.setattr(measure, "MAX_SAMPLER_SHARE", 1.0)  # every `interval` (a sample here: a few ms)
    every_50ms = run_measured(sleep_2s, cwd=tmp_path, interval=0.05)
    monkeypatch.setattr(measure, "MAX_SAMPLER_SHARE", 1e-6)  # a wait of over 1000 s after a 1 ms sample
    starved = run_measured(sleep_2s, cwd=tmp_path, interval=0.05)
    assert len(every_50ms.samples) >= 10 and len(starved.samples) == 1
    assert 2.0 <= starved.wall < 3.0 and 2.0 <= every_50ms.wall < 3.0
