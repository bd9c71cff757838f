"""Errors that mean "the input is wrong": run.py prints them as plain lines and exits non-zero."""

from __future__ import annotations

from typing import List


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type name if it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class InputError(Exception):
    """Bad data or configuration supplied by the user (not a bug)."""

    exit_code = 2

    @property
    def lines(self) -> List[str]:
        return [str(self)]


class DataSourceError(InputError):
    """The source cannot be read: missing file, wrong hash, not UTF-8, ..."""


class ProblemsError(InputError):
    """Several independent problems found at once; each becomes one printed line."""

    def __init__(self, problems: List[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    @property
    def lines(self) -> List[str]:
        return self.problems


class DataValidationError(ProblemsError):
    """The data was read but breaks the dataset's schema; one line per problem."""


class ConfigError(ProblemsError):
    """A configuration that cannot be used (a dataset description, step options); one line per problem."""
