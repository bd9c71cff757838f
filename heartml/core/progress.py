"""Progress bars for long work (tuning, LIME, batch scoring): on a terminal only, and never into stored logs.

A bar redraws itself a few times a second. ZenML records everything written to `sys.stderr` while a step runs as
lines of the step's stored logs, so a bar drawn there would add hundreds of lines to the dashboard's Logs tab. The
bars here write to the terminal behind stderr through a stream of their own, and are off when stderr is not a
terminal (CI logs, files, pipes, remote orchestrators); the callers log one summary line instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional, TextIO

from tqdm import tqdm

_terminal: Optional[TextIO] = None


def terminal() -> Optional[TextIO]:
    """A stream to the terminal behind stderr, or None when stderr is not a terminal."""
    global _terminal
    try:
        if not sys.stderr.isatty():
            return None
        if _terminal is None or _terminal.closed:
            _terminal = open(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", closefd=True)
    except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a file descriptor
        return None
    return _terminal


def progress_bar(total: int, description: str, unit: str = "it", enabled: bool = True) -> tqdm:
    """A tqdm bar on the terminal (disabled, and silent, elsewhere); use as a context manager."""
    stream = terminal() if enabled else None
    # shutil falls back to $COLUMNS or 80 where the terminal reports no width (tqdm would then draw nothing).
    return tqdm(total=total, desc=description, unit=unit, file=stream, disable=stream is None,
                ncols=shutil.get_terminal_size().columns)
