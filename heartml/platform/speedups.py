"""Costs of the libraries underneath that are not ours to change, removed once per process.

- ZenML records the package version of every artifact's data type and materializer: `source_utils` finds the
  package with `importlib.metadata.packages_distributions()`, which reads the file list of every installed
  distribution on each call (0.4 s with this project's 280 packages, about 17 calls per training run, 7 s of a
  cold run). The installed packages do not change while a process runs, so the index is computed once.
"""

from __future__ import annotations

import functools
import importlib.metadata


def cache_package_index() -> None:
    """Memoize importlib.metadata.packages_distributions for this process (idempotent)."""
    current = importlib.metadata.packages_distributions
    if not hasattr(current, "cache_info"):
        importlib.metadata.packages_distributions = functools.lru_cache(maxsize=1)(current)


def apply() -> None:
    cache_package_index()
