"""heartml/platform/processes.py on real processes: a saved id is signalled only while it is the saved process."""

import subprocess
import sys
import time

import psutil

from heartml.platform.processes import SavedProcess, stop_process


def test_a_saved_process_is_found_only_while_it_is_the_same_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"  # running its program (right after exec its cmdline is empty)
        saved = SavedProcess.of(child.pid)
        assert saved.find(program="python") is not None and saved.find().pid == child.pid
        assert saved.find(program="azurite-blob") is None  # the id names another program
        assert SavedProcess(child.pid, saved.create_time - 5).find() is None  # same id, another start: recycled
        stop_process(saved.find(), timeout=5)  # reaps it too (psutil waits for its own children)
        assert not psutil.pid_exists(child.pid) and saved.find() is None
    finally:
        child.kill()


def test_stop_process_takes_the_children_and_kills_what_ignores_sigterm():
    code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        process = psutil.Process(parent.pid)
        for _ in range(100):
            if process.children():
                break
            psutil.wait_procs([], timeout=0.05)
        (child,) = process.children()
        stop_process(process, timeout=1, with_children=True)  # the parent ignores SIGTERM: killed after 1 s
        assert not psutil.pid_exists(parent.pid)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()


def test_a_stopped_process_another_process_has_not_reaped_yet_counts_as_stopped():
    """A server restarted by a long-lived process (a test session) stays a zombie after SIGTERM until that process
    reaps it; `stack down` runs elsewhere and must not wait for its timeout, as it did (15-35 s per server)."""
    code = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); print(child.pid, flush=True); time.sleep(60)")  # never reaps its child
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server = psutil.Process(int(holder.stdout.readline()))
        started = time.monotonic()
        stop_process(server, timeout=30)
        assert time.monotonic() - started < 10
        assert server.status() == psutil.STATUS_ZOMBIE  # exited; its parent has not reaped it
    finally:
        holder.kill()
        holder.wait()
