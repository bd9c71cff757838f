"""Register the ZenML stacks declared in configs/stacks/*.yaml, idempotently.

A second call with the same file changes nothing; a changed configuration updates the component in place.

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

import click
import yaml
from pydantic import BaseModel, Field

from heartml.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DOCKER_SETTINGS = ROOT / "configs" / "docker.yaml"
STACKS_DIR = ROOT / "configs" / "stacks"
_ENV_PATTERN = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def local_stores_dir() -> Path:
    """ZenML's local stores folder (GlobalConfiguration.local_stores_path) without importing zenml."""
    if os.environ.get("ZENML_LOCAL_STORES_PATH"):
        return Path(os.environ["ZENML_LOCAL_STORES_PATH"])
    config = os.environ.get("ZENML_CONFIG_PATH")
    return (Path(config).resolve() if config else Path(click.get_app_dir("zenml"))) / "local_stores"


def _azurite_connection_string() -> str:
    from heartml import azurite

    return azurite.from_env().connection_string


# Variables with a computed default, used when the environment does not set them.
BUILTIN_VARIABLES: Dict[str, Callable[[], str]] = {
    "ZENML_LOCAL_STORES_PATH": lambda: str(local_stores_dir()),
    "AZURITE_CONNECTION_STRING": _azurite_connection_string,
}


class ComponentDecl(BaseModel):
    name: str
    flavor: str
    configuration: Dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True  # e.g. `enabled: ${AZUREML_STEP_OPERATOR:-false}` for an optional component


class StackDecl(BaseModel):
    name: str
    components: Dict[str, ComponentDecl]
    secrets: Dict[str, Dict[str, str]] = Field(default_factory=dict)
    services: List[Literal["azurite"]] = Field(default_factory=list)
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
        raise FileNotFoundError(f"{path}: no such stack declaration (declared stacks: {known})")
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


def ensure_secrets(decl: StackDecl) -> List[str]:
    """Create or update the declared ZenML secrets from the environment. Unset values leave a secret as it is."""
    from zenml.client import Client
    from zenml.exceptions import EntityExistsError

    client = Client()
    changes = []
    unset_secrets = {where.split(".")[1] for where, _ in decl.unset_variables if where.startswith("secrets.")}
    for name, values in decl.secrets.items():
        if name in unset_secrets:
            continue
        try:
            existing = client.get_secret(name, allow_partial_name_match=False)
        except KeyError:
            try:
                client.create_secret(name=name, values=values)
            except EntityExistsError:  # created concurrently
                continue
            changes.append(f"created secret {name!r}")
            continue
        if existing.secret_values != values:
            client.update_secret(existing.id, add_or_update_values=values,
                                 remove_values=[k for k in existing.secret_values if k not in values])
            changes.append(f"updated secret {name!r}")
    return changes


def ensure_stack(decl: StackDecl, activate: bool = True) -> List[str]:
    """Create or update the stack's components and the stack itself. Returns what changed."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    changes: List[str] = []
    component_ids: Dict[StackComponentType, Any] = {}
    for type_name, component in decl.enabled_components.items():
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
        current = {t: c[0].id for t, c in stacks[0].components.items() if c}
        if current != component_ids:
            updates = {t: [i] for t, i in component_ids.items()}
            updates.update({t: [] for t in current if t not in component_ids})  # a component switched off
            client.update_stack(name_id_or_prefix=stacks[0].id, component_updates=updates)
            changes.append(f"updated stack {decl.name!r}")
    if activate and client.active_stack_model.name != decl.name:
        client.activate_stack(decl.name)
        changes.append(f"activated stack {decl.name!r}")
    return changes


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


def prepare_stack(stack_name: Optional[str], echo: Callable[[str], None]) -> Optional[StackDecl]:
    """Before a run: check the stack, start its services, fill its secrets, register it (with --stack).

    With a name, configs/stacks/NAME.yaml is registered and activated. Without one, the active stack is used;
    if it was declared here, its checks and services still run (e.g. Azurite is started when it is down).
    Returns the declaration, or None for an active stack that is not declared in configs/stacks/.
    """
    from zenml.client import Client

    client = Client()
    decl = load_stack_decl(stack_name) if stack_name else declared_stack(client.active_stack_model.name)
    if decl is None:
        return None
    existing_secrets = {s.name for s in client.list_secrets(size=1000).items if s.name in decl.secrets}
    problems = []
    orchestrator = decl.component("orchestrator")
    if orchestrator and orchestrator.flavor == "azureml":
        from heartml.azure import preflight_problems

        store = client.zen_store.config
        problems += preflight_problems(decl, str(store.type.value), store.url)
    problems += missing_settings(decl, existing_secrets)
    if problems:
        raise StackNotReadyError(decl, problems)
    if "azurite" in decl.services:
        from heartml import azurite

        for line in azurite.prepare(decl):
            echo(line)
    for change in ensure_secrets(decl):
        echo(change)
    if stack_name:
        for change in ensure_stack(decl):
            echo(change)
    return decl


def local_mlflow_database() -> Optional[Path]:
    """The SQLite file of the active stack's MLflow tracker, or None when it tracks elsewhere (a server)."""
    from zenml.client import Client

    tracker = Client().active_stack_model.components.get("experiment_tracker")
    uri = (tracker[0].configuration.get("tracking_uri") or "") if tracker and tracker[0].flavor_name == "mlflow" else ""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def initialize_local_mlflow() -> None:
    """Create the active stack's SQLite MLflow database (tracking and registry tables) if it is new.

    Called while run.py holds its setup lock: MLflow creates the tables of a new database without a lock between
    processes, so two runs opening a new database at once could both try ("table ... already exists").
    """
    database = local_mlflow_database()
    if database is None:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments(max_results=1)  # creates the tables


def prepare_local_mlflow(run_config: Path, pipeline_name: str) -> None:
    """For an MLflow tracker on a local SQLite file: create its folder, and the run's experiment with its artifacts
    beside the database (MLflow would otherwise put them in ./mlruns of whatever the working directory is)."""
    settings = (yaml.safe_load(run_config.read_text()) or {}).get("settings") or {}
    experiment_name = (settings.get("experiment_tracker") or {}).get("experiment_name") or pipeline_name

    database = local_mlflow_database()
    if database is None:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=f"sqlite:///{database}")
    if mlflow_client.get_experiment_by_name(experiment_name) is None:
        try:
            mlflow_client.create_experiment(experiment_name,
                                            artifact_location=(database.parent / "artifacts").as_uri())
        except MlflowException:  # created concurrently by another run
            if mlflow_client.get_experiment_by_name(experiment_name) is None:
                raise
