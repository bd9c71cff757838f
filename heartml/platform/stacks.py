"""Register the ZenML stacks declared in configs/stacks/*.yaml, idempotently, and prepare them before a run.

A second call with the same file changes nothing; a changed configuration updates the component in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from heartml.platform import azurite as azurite_service
from heartml.platform.declarations import (
    StackDecl,
    StackNotReadyError,
    declared_stack,
    load_stack_decl,
    missing_settings,
)


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
        private = name in decl.private_secrets
        try:
            existing = client.get_secret_by_name_and_private_status(name, private=private)
        except KeyError:
            try:
                client.create_secret(name=name, values=values, private=private)
            except EntityExistsError:  # created concurrently
                continue
            changes.append(f"created {'private ' if private else ''}secret {name!r}")
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


def stack_problems(stack_name: Optional[str]) -> Tuple[Optional[StackDecl], List[str]]:
    """The declaration of `stack_name` (else of the active stack, if declared) and what it still lacks: Azure ML
    preflight findings and unset variables. Changes nothing."""
    from zenml.client import Client

    client = Client()
    decl = load_stack_decl(stack_name) if stack_name else declared_stack(client.active_stack_model.name)
    if decl is None:
        return None, []
    existing_secrets = {s.name for s in client.list_secrets(size=1000).items if s.name in decl.secrets}
    problems = []
    orchestrator = decl.component("orchestrator")
    if orchestrator and orchestrator.flavor == "azureml":
        from heartml.platform.azure import preflight_problems

        store = client.zen_store.config
        problems += preflight_problems(decl, str(store.type.value), store.url)
    problems += missing_settings(decl, existing_secrets)
    if "team" in decl.services and decl.servers:
        from heartml.platform.team import client_problems

        tracker = decl.component("experiment_tracker")
        problems += client_problems(str(client.zen_store.config.type.value),
                                    tracker.configuration.get("tracking_uri") if tracker else None,
                                    Path(decl.servers.home))
    return decl, problems


def prepare_stack(stack_name: Optional[str], echo: Callable[[str], None], activate: bool = True) -> Optional[StackDecl]:
    """Before a run: check the stack, start its services, fill its secrets, register it (with a name).

    With a name, configs/stacks/NAME.yaml is registered and (by default) activated. Without one, the active stack is
    used; if it was declared here, its checks and services still run (e.g. Azurite is started when it is down).
    Returns the declaration, or None for an active stack that is not declared in configs/stacks/.
    """
    decl, problems = stack_problems(stack_name)
    if decl is None:
        return None
    if problems:
        raise StackNotReadyError(decl, problems)
    if "azurite" in decl.services:
        for line in prepare_azurite(decl):
            echo(line)
    for change in ensure_secrets(decl):
        echo(change)
    if stack_name:
        for change in ensure_stack(decl, activate=activate):
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


def prepare_azurite(decl: StackDecl) -> List[str]:
    """For a stack on Azurite: Azurite up, and the artifact store's blob container present."""
    azurite = azurite_service.from_env()
    lines = [azurite_service.ensure_running(azurite)]
    store = decl.component("artifact_store")
    if store and store.flavor == "azure":
        container = store.configuration["path"].removeprefix("az://").split("/")[0]
        secret = decl.secrets.get(store.configuration.get("authentication_secret", ""), {})
        if azurite_service.ensure_container(secret.get("connection_string") or azurite.connection_string, container):
            lines.append(f"created blob container {container!r} in Azurite")
    return lines
