"""Costs of the libraries underneath that are not ours to change, removed once per process.

- ZenML records the package version of every artifact's data type and materializer: `source_utils` finds the
  package with `importlib.metadata.packages_distributions()`, which reads the file list of every installed
  distribution on each call (0.4 s with this project's 280 packages, about 17 calls per training run, 7 s of a
  cold run). The installed packages do not change while a process runs, so the index is computed once. MLflow's
  `log_model` builds the same index again through the `importlib_metadata` backport (0.6 s of every training
  run's registration) to check the model's requirements: it gets the one index too (the two differ only in
  entries that name no module, `..` and `__pycache__`). That once still cost 0.6 s, 0.5 s of it the backport
  checking that each of the ~44,000 files the distributions list exists; the index is built from the lists
  themselves (`package_index`), which is what the standard library's own `Distribution.files` reads, as strings,
  and each distribution's name is read off its metadata's header lines: 0.37 s to 0.13 s.
- Python's cyclic garbage collector walks every live object on each full collection: while a command imports ZenML,
  MLflow, sklearn and the rest (about a million objects that live as long as the process) that is about 1 s, and
  at exit, when the interpreter collects once more before it ends, another 2 s. Collection is off while a
  command loads its libraries; those objects are then frozen (later collections skip them) and none is collected
  at exit (Python never promised finalizers for objects alive at exit).
- ZenML activates every installed integration when a pipeline compiles. Activating the Azure one imports its
  service connector, and with it the Azure SDK: 0.4-0.5 s of every run, cold or cached, on any stack. ZenML's
  service connector registry imports the same module the first time anything asks it for a connector type, so
  the eager import is skipped and nothing is lost.
"""

from __future__ import annotations

import atexit
import collections
import csv
import functools
import gc
import importlib.metadata
from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import Any, Dict, List


def _top_level_inferred(distribution: Any) -> set:
    """`importlib.metadata._top_level_inferred(distribution)` from the files its RECORD lists, as strings: the
    first part of each `.py` file's path, or at the top its name without `.py` (the library makes a path object
    of each of the ~44,000 listed files, and the backport also stats each one). Absolute paths, and layouts
    without a RECORD, go to the library."""
    record = distribution.read_text("RECORD")
    if record is None:
        return importlib.metadata._top_level_inferred(distribution)  # type: ignore[attr-defined]
    names = set()
    for row in csv.reader(record.splitlines()):
        if not row:
            continue
        if row[0].startswith("/"):
            listed = SimpleNamespace(files=[PurePosixPath(row[0])])
            names |= importlib.metadata._top_level_inferred(listed)  # type: ignore[attr-defined]
            continue
        parts = [part for part in row[0].split("/") if part not in ("", ".")]  # as PurePosixPath splits it
        if parts and len(parts[-1]) > 3 and parts[-1].endswith(".py"):  # its suffix is ".py"
            names.add(parts[0] if len(parts) > 1 else parts[-1][:-3])
    return names


def _distribution_name(distribution: Any) -> str:
    """`distribution.metadata["Name"]` read off the metadata's header lines (the library parses the whole file as
    an e-mail message, the package's long description included)."""
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():  # the end of the headers
            break
        header, colon, value = line.partition(":")
        if colon and header.lower() == "name":
            return value.lstrip(" \t")
    return distribution.metadata["Name"]


def package_index() -> Dict[str, List[str]]:
    """`importlib.metadata.packages_distributions()` (top-level module -> distribution names) from each
    distribution's declared top-level names or, without them, its listed files."""
    metadata: Any = importlib.metadata
    index: Dict[str, List[str]] = collections.defaultdict(list)
    for distribution in metadata.distributions():
        for module in metadata._top_level_declared(distribution) or _top_level_inferred(distribution):
            index[module].append(_distribution_name(distribution))
    return dict(index)


def cache_package_index() -> None:
    """Memoize importlib.metadata.packages_distributions for this process, built by `package_index` where this
    Python's importlib.metadata has the helpers it uses, and let the importlib_metadata backport answer from it
    (idempotent)."""
    current = importlib.metadata.packages_distributions
    if not hasattr(current, "cache_info"):
        helpers = all(hasattr(importlib.metadata, name) for name in ("_top_level_declared", "_top_level_inferred"))
        importlib.metadata.packages_distributions = functools.lru_cache(maxsize=1)(
            package_index if helpers else current)
    try:
        import importlib_metadata
    except ImportError:  # MLflow's dependency; absent, nobody asks it
        return
    importlib_metadata.packages_distributions = importlib.metadata.packages_distributions


def no_collection_at_exit() -> None:
    """Freeze every object when the process exits, before the interpreter's own last collection (idempotent)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def loading_libraries() -> None:
    """At the start of a command, before its imports: no cyclic collection until `libraries_loaded()`."""
    gc.disable()
    no_collection_at_exit()


def libraries_loaded() -> None:
    """The command's libraries are loaded (what exists now lives as long as the process): freeze it, collect again.
    Call before long work (a pipeline, a server, a worker loop)."""
    gc.freeze()
    gc.enable()


def defer_azure_connector() -> None:
    """The Azure integration's activation imports nothing (idempotent)."""
    try:
        from zenml.integrations.azure import AzureIntegration
    except ImportError:  # no ZenML here (a plain heartml install): nothing activates integrations
        return
    # ZenML's connector registry imports the connector the first time a connector type is asked for
    # (`ServiceConnectorRegistry.register_builtin_service_connectors`).
    AzureIntegration.activate = classmethod(lambda cls: None)


def apply() -> None:
    cache_package_index()
    no_collection_at_exit()
    defer_azure_connector()
