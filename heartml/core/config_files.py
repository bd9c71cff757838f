"""YAML files read into a pydantic model, every problem one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Type, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from heartml.core.errors import ConfigError, first_line

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(path: Path, model: Type[Model], what: str, label: Optional[str] = None,
                    empty_means_defaults: bool = False) -> Model:
    """`path` validated as `model`; a ConfigError otherwise (`label` names the file in messages, default the path;
    `what` is what a missing file is called). An empty file is the model's defaults if `empty_means_defaults`."""
    label = label or str(path)
    try:
        with Path(path).open(encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{label}: {what} not found"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: not valid YAML: {first_line(exc)}"]) from None
    try:
        return model.model_validate({} if raw is None and empty_means_defaults else raw)
    except ValidationError as exc:
        raise ConfigError([f"{label}: {'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
                           for error in exc.errors()]) from None
