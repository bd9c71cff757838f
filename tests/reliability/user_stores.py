"""The developer's own ZenML and MLflow stores, as files: where they are and a fingerprint of each file in them.

Where: ZENML_CONFIG_PATH (or ZenML's default folder, ~/.config/zenml on Linux) and ZENML_LOCAL_STORES_PATH as the
developer's shell set them; the project's own `.zen`; MLFLOW_TRACKING_URI when it names a local file or folder;
and MLflow's defaults, ./mlflow.db and ./mlruns, in the project and in the directory pytest was started from.
A location that does not exist is recorded as missing (it must stay missing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple
from urllib.parse import urlparse

import click

ROOT = Path(__file__).resolve().parent.parent.parent
Fingerprint = Optional[Dict[str, Tuple[int, int]]]  # relative path -> (size, mtime in ns); None: missing


def user_store_locations(env: Mapping[str, str]) -> Dict[str, Path]:
    locations = {"ZenML config": Path(env.get("ZENML_CONFIG_PATH") or click.get_app_dir("zenml")),
                 "project .zen": ROOT / ".zen"}
    if env.get("ZENML_LOCAL_STORES_PATH"):
        locations["ZenML local stores"] = Path(env["ZENML_LOCAL_STORES_PATH"])
    uri = env.get("MLFLOW_TRACKING_URI", "")
    parsed = urlparse(uri)
    if uri.startswith("sqlite:///"):
        locations["MLFLOW_TRACKING_URI"] = Path(uri.removeprefix("sqlite:///"))
    elif uri and parsed.scheme in ("", "file"):
        locations["MLFLOW_TRACKING_URI"] = Path(parsed.path or uri)
    for base in {ROOT, Path.cwd()}:
        locations[f"{base}/mlflow.db"] = base / "mlflow.db"
        locations[f"{base}/mlruns"] = base / "mlruns"
    return {name: path.expanduser().resolve() for name, path in locations.items()}


def fingerprint(path: Path) -> Fingerprint:
    if not path.exists():
        return None
    if path.is_file():
        stat = path.stat()
        return {".": (stat.st_size, stat.st_mtime_ns)}
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder) / name
            try:
                stat = file.stat()
            except FileNotFoundError:  # a file that vanished while walking counts as a change later
                continue
            found[str(file.relative_to(path))] = (stat.st_size, stat.st_mtime_ns)
    return found


def snapshot(env: Mapping[str, str]) -> Dict[str, Tuple[Path, Fingerprint]]:
    return {name: (path, fingerprint(path)) for name, path in user_store_locations(env).items()}


def changes(before: Dict[str, Tuple[Path, Fingerprint]]) -> Dict[str, str]:
    """What differs now from `before`, per location, in words."""
    found = {}
    for name, (path, then) in before.items():
        now = fingerprint(path)
        if then == now:
            continue
        if then is None:
            found[name] = f"{path} was created"
        elif now is None:
            found[name] = f"{path} was removed"
        else:
            differing = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
            found[name] = f"{path}: {len(differing)} files changed, e.g. {differing[:5]}"
    return found
