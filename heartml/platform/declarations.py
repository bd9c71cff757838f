"""Stack declarations (configs/stacks/*.yaml): loading, `${VAR}` expansion, what the environment must still
provide, and the run settings a stack adds. Nothing here talks to ZenML; `heartml.platform.stacks` registers them.

A declaration may also name
- `secrets`: ZenML secrets the components reference (`authentication_secret`, `{{name.key}}`), filled from
  environment variables, so no credential is ever written in the repository;
- `services`: local services run.py starts when they are not running (`azurite`);
- `step_operator_steps`: steps that run on the stack's step operator, when it has one enabled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple

import yaml
from pydantic import BaseModel, Field

from heartml.core.errors import InputError
from heartml.platform import azurite
from heartml.platform.paths import PROJECT_ROOT as ROOT
from heartml.platform.paths import local_stores_dir

DOCKER_SETTINGS = ROOT / "configs" / "docker.yaml"
STACKS_DIR = ROOT / "configs" / "stacks"
_ENV_PATTERN = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _azurite_connection_string() -> str:
    return azurite.from_env().connection_string


def _team_home() -> str:
    # PostgreSQL runs as `postgres` for root, which cannot enter root's home folder.
    return "/var/lib/heartml/team" if os.geteuid() == 0 else str(local_stores_dir() / "team")


# Variables with a computed default, used when the environment does not set them.
BUILTIN_VARIABLES: Dict[str, Callable[[], str]] = {
    "ZENML_LOCAL_STORES_PATH": lambda: str(local_stores_dir()),
    "AZURITE_CONNECTION_STRING": _azurite_connection_string,
    "HEARTML_TEAM_HOME": _team_home,
}


class ComponentDecl(BaseModel):
    name: str
    flavor: str
    configuration: Dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True  # e.g. `enabled: ${AZUREML_STEP_OPERATOR:-false}` for an optional component


class TeamServersDecl(BaseModel):
    """Where the team stack's servers (heartml/platform/team.py) keep their data and which loopback ports they use."""

    home: str
    mariadb_port: int
    postgresql_port: int
    azurite_port: int
    zenml_port: int
    mlflow_port: int
    mlflow_workers: int = 2
    zenml_artifacts_container: str = "zenml-artifacts"
    mlflow_artifacts_container: str = "mlflow-artifacts"


class StackDecl(BaseModel):
    name: str
    components: Dict[str, ComponentDecl]
    secrets: Dict[str, Dict[str, str]] = Field(default_factory=dict)
    # Secrets each account keeps for itself (ZenML private secrets): e.g. its own MLflow login.
    private_secrets: List[str] = Field(default_factory=list)
    services: List[Literal["azurite", "team"]] = Field(default_factory=list)
    servers: Optional[TeamServersDecl] = None
    step_operator_steps: List[str] = Field(default_factory=list)
    # ZenML execution mode for runs on this stack: fail_fast where the orchestrator supports it (local), so the
    # first failing step's own error reaches run.py; None keeps the orchestrator's default (AzureML has no fail_fast).
    execution_mode: Optional[Literal["fail_fast", "stop_on_failure", "continue_on_failure"]] = None
    source_file: Optional[Path] = None
    # `${VAR}` references (no default) that the environment left empty: (where, VAR).
    unset_variables: List[Tuple[str, str]] = Field(default_factory=list)

    @property
    def enabled_components(self) -> Dict[str, ComponentDecl]:
        return {kind: c for kind, c in self.components.items() if c.enabled}

    def component(self, kind: str) -> Optional[ComponentDecl]:
        return self.enabled_components.get(kind)


def _lookup(name: str) -> Optional[str]:
    value = os.environ.get(name)
    if value:
        return value
    if name in BUILTIN_VARIABLES:
        return BUILTIN_VARIABLES[name]()
    return None


def _expand_env(value: Any, unset: List[Tuple[str, str]], where: str = "") -> Any:
    """`${VAR}` / `${VAR:-default}` in string values, so identifiers stay out of the repository."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            found = _lookup(match.group(1))
            if found is not None:
                return found
            if match.group(2) is None:
                unset.append((where, match.group(1)))
            return match.group(2) or ""

        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, unset, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, unset, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def stack_decl_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.suffix else STACKS_DIR / f"{name_or_path}.yaml"


def load_stack_decl(name_or_path: str) -> StackDecl:
    path = stack_decl_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in STACKS_DIR.glob("*.yaml")))
        raise InputError(f"{path}: no such stack declaration (declared stacks: {known})")
    with path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    unset: List[Tuple[str, str]] = []
    expanded = _expand_env(raw, unset)
    return StackDecl.model_validate({**expanded, "source_file": path, "unset_variables": unset})


def declared_stack(name: str) -> Optional[StackDecl]:
    """The declaration behind a registered stack name, if configs/stacks/ has one."""
    path = stack_decl_path(name)
    if not path.is_file():
        return None
    decl = load_stack_decl(str(path))
    return decl if decl.name == name else None


class StackNotReadyError(InputError):
    """The declared stack lacks settings or services; nothing was registered."""

    def __init__(self, decl: StackDecl, problems: List[str]):
        self.problems = problems
        where = decl.source_file.relative_to(ROOT) if decl.source_file and decl.source_file.is_relative_to(ROOT) \
            else decl.source_file
        self.header = f"stack '{decl.name}' ({where}) is not ready; nothing was registered or submitted. Missing:"
        super().__init__("\n".join([self.header, *problems]))

    @property
    def lines(self) -> List[str]:
        return [self.header, *(f"  - {problem}" for problem in self.problems)]


def missing_settings(decl: StackDecl, existing_secrets: Optional[set] = None) -> List[str]:
    """One plain sentence per variable the environment must provide and does not.

    A secret's variable counts as provided when a ZenML secret of that name already exists.
    """
    existing_secrets = existing_secrets or set()
    users: Dict[str, List[str]] = {}
    for where, variable in decl.unset_variables:
        parts = where.split(".")
        if parts[0] == "components" and len(parts) > 2:
            component = decl.components[parts[1]]
            if component.enabled:
                setting = parts[-1]
                users.setdefault(variable, []).append(
                    f"the {parts[1].replace('_', ' ')} '{component.name}' needs it as {setting}")
        elif parts[0] == "secrets" and len(parts) > 2 and parts[1] not in existing_secrets:
            users.setdefault(variable, []).append(
                f"it fills the ZenML secret '{parts[1]}' (key {parts[2]}), which does not exist yet")
    return [f"{variable} is not set: {'; '.join(reasons)}." for variable, reasons in users.items()]


def run_settings(decl: StackDecl) -> Dict[str, Any]:
    """Run-configuration defaults this stack needs: execution mode, Docker settings for container stacks,
    step operators."""
    overlay: Dict[str, Any] = {}
    if decl.execution_mode:
        overlay["execution_mode"] = decl.execution_mode
    if decl.component("container_registry"):
        overlay["settings"] = {"docker": docker_settings()}
    step_operator = decl.component("step_operator")
    if step_operator:
        overlay["steps"] = {step: {"step_operator": step_operator.name} for step in decl.step_operator_steps}
    return overlay


def docker_settings() -> Dict[str, Any]:
    """configs/docker.yaml: the `prebuilt` route when HEARTML_PARENT_IMAGE names an image, else `build`."""
    with DOCKER_SETTINGS.open(encoding="utf-8") as handle:
        routes = _expand_env(yaml.safe_load(handle), [])
    return routes["prebuilt" if os.environ.get("HEARTML_PARENT_IMAGE") else "build"]


def merge_defaults(config: Dict[str, Any], defaults: Dict[str, Any]) -> Dict[str, Any]:
    """`defaults` deep-merged under `config`: what the run configuration says wins."""
    merged = dict(defaults)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_defaults(value, merged[key])
        else:
            merged[key] = value
    return merged
