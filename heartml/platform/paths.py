"""Where the project and ZenML's local stores are, without importing zenml."""

from __future__ import annotations

import os
from pathlib import Path

import click

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def local_stores_dir() -> Path:
    """ZenML's local stores folder (GlobalConfiguration.local_stores_path) without importing zenml."""
    if os.environ.get("ZENML_LOCAL_STORES_PATH"):
        return Path(os.environ["ZENML_LOCAL_STORES_PATH"])
    config = os.environ.get("ZENML_CONFIG_PATH")
    return (Path(config).resolve() if config else Path(click.get_app_dir("zenml"))) / "local_stores"
