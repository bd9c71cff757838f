"""What `run.py` shows in the terminal by default: ZenML's step progress, warnings that matter, and its own summary.

ZenML sends every log record to the root logger, which has two ZenML handlers: one writes to the terminal, the
other stores the step's logs (the dashboard's Logs tab of a step). Lowering `ZENML_LOGGING_VERBOSITY` would raise
the root level and so drop INFO lines (and a step's printed output) from the stored logs too. Quiet mode instead
filters the terminal handler alone, so the stored logs stay complete; `run.py --verbose` leaves it unfiltered.
"""

from __future__ import annotations

import logging
import re

# ZenML's own progress lines, one per step (local orchestrator: the client process runs the steps).
STEP_PROGRESS = re.compile(r"^(Step `[^`]+` has finished in |Using cached version of step `)")

# The local orchestrator's record of a failed step, with the step's traceback attached.
STEP_FAILED = re.compile(r"^Step \S+ failed\.$")

# Warnings known to be harmless here, each with the reason.
HARMLESS_WARNINGS = (
    # ZenML's MLflow tracker switches autologging off for a list of flavours; MLflow 3 has no fastai flavour left.
    re.compile(r"^Failed to disable MLflow autologging for the following frameworks: \['fastai'\]\.$"),
    # A fresh ZenML store activates its default stack; run.py then activates its own stack and says so.
    re.compile(r"^Setting the (global|repo) active stack to "),
)

# MLflow's own loggers: INFO is table creation and the like; its warnings still show.
MLFLOW_QUIET_LEVEL = "WARNING"


class QuietConsoleFilter(logging.Filter):
    """Lets through step progress and warnings/errors, except the known harmless ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and STEP_FAILED.search(message):
            return False  # run.py says why in one line; the traceback stays in the step's logs and in --verbose
        if record.levelno >= logging.WARNING:
            return not any(pattern.search(message) for pattern in HARMLESS_WARNINGS)
        return bool(STEP_PROGRESS.search(message))


def quiet_zenml_console() -> None:
    """Filter ZenML's terminal handler (idempotent). Call after `import zenml`, which installs the handler."""
    from zenml.logger import ZenMLConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, ZenMLConsoleHandler) and \
                not any(isinstance(existing, QuietConsoleFilter) for existing in handler.filters):
            handler.addFilter(QuietConsoleFilter())
