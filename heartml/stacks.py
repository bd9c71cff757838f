"""Register the ZenML stacks declared in configs/stacks/*.yaml, idempotently.

A second call with the same file changes nothing; a changed configuration updates the component in place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, List

import yaml
from pydantic import BaseModel, Field

STACKS_DIR = Path(__file__).resolve().parent.parent / "configs" / "stacks"
_ENV_PATTERN = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


class ComponentDecl(BaseModel):
    name: str
    flavor: str
    configuration: Dict[str, Any] = Field(default_factory=dict)


class StackDecl(BaseModel):
    name: str
    components: Dict[str, ComponentDecl]


def _expand_env(value: Any) -> Any:
    """`${VAR}` / `${VAR:-default}` in string values, so identifiers stay out of the repository."""
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def load_stack_decl(name_or_path: str) -> StackDecl:
    path = Path(name_or_path)
    if not path.suffix:
        path = STACKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STACKS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"{path}: no such stack declaration (declared stacks: {known})")
    with path.open(encoding="utf-8") as handle:
        return StackDecl.model_validate(_expand_env(yaml.safe_load(handle)))


def ensure_stack(decl: StackDecl, activate: bool = True) -> List[str]:
    """Create or update the stack's components and the stack itself. Returns what changed."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    changes: List[str] = []
    component_ids: Dict[StackComponentType, Any] = {}
    for type_name, component in decl.components.items():
        component_type = StackComponentType(type_name)
        existing = client.list_stack_components(name=component.name, type=component_type, hydrate=True).items
        if not existing:
            model = client.create_stack_component(
                name=component.name, flavor=component.flavor, component_type=component_type,
                configuration=component.configuration,
            )
            changes.append(f"registered {type_name} {component.name!r}")
        else:
            model = existing[0]
            if model.flavor_name != component.flavor:
                raise ValueError(
                    f"{type_name} {component.name!r} exists with flavor {model.flavor_name!r}, "
                    f"declared {component.flavor!r}: rename it in configs/stacks/{decl.name}.yaml"
                )
            wanted = {k: v for k, v in component.configuration.items()}
            current = {k: model.configuration.get(k) for k in wanted}
            if wanted != current:
                model = client.update_stack_component(
                    name_id_or_prefix=model.id, component_type=component_type, configuration=wanted
                )
                changes.append(f"updated {type_name} {component.name!r}")
        component_ids[component_type] = model.id

    stacks = client.list_stacks(name=decl.name, hydrate=True).items
    if not stacks:
        client.create_stack(name=decl.name, components=component_ids)
        changes.append(f"registered stack {decl.name!r}")
    else:
        current = {t: c[0].id for t, c in stacks[0].components.items()}
        if current != component_ids:
            client.update_stack(name_id_or_prefix=stacks[0].id, component_updates={t: [i] for t, i in component_ids.items()})
            changes.append(f"updated stack {decl.name!r}")
    if activate and client.active_stack_model.name != decl.name:
        client.activate_stack(decl.name)
        changes.append(f"activated stack {decl.name!r}")
    return changes
