"""Quiet console: which ZenML log records reach the terminal by default (the stored step logs get all of them)."""

import logging

import pytest

from heartml.platform.console import QuietConsoleFilter, quiet_zenml_console


def record(message: str, level: int = logging.INFO, name: str = "zenml.orchestrators.step_launcher"):
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


@pytest.mark.parametrize("message, level, shown", [
    ("Step `model_building` has finished in `1m38s`.", logging.INFO, True),
    ("Using cached version of step `data_preprocessing`.", logging.INFO, True),
    ("Step `model_building` has started.", logging.INFO, False),
    ("Using stack: `local`", logging.INFO, False),
    ("Models can be viewed in the dashboard using ZenML Pro. Sign up for a free trial at https://www.zenml.io/pro/",
     logging.INFO, False),
    ("Promotion of heart_failure_classifier version 2: promoted", logging.INFO, False),
    ("Failed to disable MLflow autologging for the following frameworks: ['fastai'].", logging.WARNING, False),
    ("Failed to disable MLflow autologging for the following frameworks: ['fastai', 'sklearn'].", logging.WARNING,
     True),  # a framework that is installed: worth seeing
    ("Setting the global active stack to default.", logging.WARNING, False),
    ("xgboost: tuning stopped by the 300 s timeout after 7 of 25 trials", logging.WARNING, True),
    ("Failed to run step `register_model`: boom", logging.ERROR, True),
])
def test_quiet_filter_shows_step_progress_and_warnings_that_matter(message, level, shown):
    assert QuietConsoleFilter().filter(record(message, level)) is shown


def test_a_failed_step_shows_its_line_but_not_its_traceback():
    try:
        raise ConnectionError("server gone")
    except ConnectionError:
        import sys

        failed = logging.LogRecord("zenml.orchestrators.local.local_orchestrator", logging.ERROR, __file__, 1,
                                   "Step %s failed.", ("register_model",), sys.exc_info())
    assert QuietConsoleFilter().filter(failed) is False  # run.py prints the one line; the step logs keep it all
    without_traceback = record("Step register_model failed.", logging.ERROR)
    assert QuietConsoleFilter().filter(without_traceback) is True


def test_the_filter_goes_on_zenml_console_handler_once():
    from zenml.logger import ZenMLConsoleHandler, ZenMLLoggingHandler

    quiet_zenml_console()
    quiet_zenml_console()
    try:
        handlers = logging.getLogger().handlers
        console = [h for h in handlers if isinstance(h, ZenMLConsoleHandler)]
        storage = [h for h in handlers if isinstance(h, ZenMLLoggingHandler)]
        assert console and storage
        assert all(sum(isinstance(f, QuietConsoleFilter) for f in h.filters) == 1 for h in console)
        assert not any(isinstance(f, QuietConsoleFilter) for h in storage for f in h.filters)  # stored logs: all
    finally:
        for handler in logging.getLogger().handlers:
            for existing in [f for f in handler.filters if isinstance(f, QuietConsoleFilter)]:
                handler.removeFilter(existing)
