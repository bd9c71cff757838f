"""ZenML's side of the MLflow registry: MLflow configured from the active stack, and ZenML model stages kept in
step with the MLflow aliases."""

from __future__ import annotations

import json
import logging
from typing import Dict, List, Optional, Tuple
from uuid import UUID

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from zenml.client import Client
from zenml.enums import ModelStages

from heartml.core.modeling import SOFT_VOTING
from heartml.registry.model_versions import (
    PRODUCTION,
    STAGING,
    ZENML_MODEL_TAG,
    ZENML_RUN_ID_TAG,
    ZENML_VERSION_ID_TAG,
    RegistryError,
    is_complete,
    version_by_alias,
)

logger = logging.getLogger(__name__)


def configure_mlflow_from_active_stack() -> str:
    """Point MLflow at the active ZenML stack's tracking/registry store (outside steps, e.g. run.py)."""
    tracker = Client().active_stack.experiment_tracker
    if tracker is None or tracker.flavor != "mlflow":
        raise RegistryError(f"the active stack {Client().active_stack_model.name!r} has no MLflow experiment tracker")
    tracker.configure_mlflow()
    return mlflow.get_tracking_uri()


def production_parameters(client: MlflowClient, name: str, dataset: str) -> Tuple[Optional[str], Dict[str, Dict]]:
    """(version, per family its tuned parameters) of the complete `production` version of `name` trained on
    `dataset`: what the next search tries first. Read from the `model_comparison` artifact of the ZenML run that
    trained it (a run whose model_building came from the cache logged no comparison to MLflow). (None, {}) when
    there is no such version or run; a store that cannot answer only costs the warm start (one warning)."""
    try:
        version = version_by_alias(client, name, PRODUCTION)
        if version is None or not is_complete(version) or version.tags.get("dataset") != dataset or \
                ZENML_RUN_ID_TAG not in version.tags:
            return None, {}
        run = Client().get_pipeline_run(version.tags[ZENML_RUN_ID_TAG], allow_name_prefix_match=False)
        comparison = run.steps["model_building"].outputs["model_comparison"][0].load()
    except (MlflowException, KeyError, ValueError, OSError) as exc:
        logger.warning("no warm start from production of %s: %s", name, str(exc).splitlines()[0] if str(exc) else exc)
        return None, {}
    params = {row.family: json.loads(row.params) for row in comparison.itertuples() if row.family != SOFT_VOTING}
    return str(version.version), params


def mirror_stages_to_zenml(client: MlflowClient, name: str) -> List[str]:
    """Make the ZenML model stages agree with the MLflow aliases; returns what changed.

    A ZenML version has a single stage, so a version holding both aliases is `production` there, and any other
    version left in `staging` is archived. Versions registered outside ZenML (no ZenML tags) are skipped.
    """
    zenml = Client()
    holders = {alias: version_by_alias(client, name, alias) for alias in (PRODUCTION, STAGING)}
    targets = {alias: (v.tags.get(ZENML_MODEL_TAG), v.tags.get(ZENML_VERSION_ID_TAG))
               for alias, v in holders.items() if v is not None and v.tags.get(ZENML_VERSION_ID_TAG)}
    changes = []
    for alias in (PRODUCTION, STAGING):
        if alias not in targets or (alias == STAGING and targets[STAGING] == targets.get(PRODUCTION)):
            continue
        model_name, version_id = targets[alias]
        updated = zenml.update_model_version(model_name_or_id=model_name, version_name_or_id=UUID(version_id),
                                             stage=alias, force=True)
        changes.append(f"ZenML model {model_name} version {updated.number}: stage {alias}")
    zenml_models = {model for model, _ in targets.values()}
    for model_name in zenml_models:
        keep = targets.get(STAGING) if targets.get(STAGING) != targets.get(PRODUCTION) else None
        for stale in zenml.list_model_versions(model=model_name, stage=ModelStages.STAGING, size=100):
            if keep is None or str(stale.id) != keep[1]:
                # ZenML holds one version per stage, `archived` too: force keeps the earlier ones archived
                zenml.update_model_version(model_name_or_id=model_name, version_name_or_id=stale.id,
                                           stage=ModelStages.ARCHIVED, force=True)
                changes.append(f"ZenML model {model_name} version {stale.number}: stage archived")
    return changes


def azureml_workspace_of_active_stack() -> Optional[Dict[str, str]]:
    """subscription_id, resource_group and workspace of the active stack's AzureML orchestrator, or None."""
    from heartml.platform.azure_endpoint import workspace_from

    orchestrator = Client().active_stack_model.components.get("orchestrator")
    if not orchestrator or orchestrator[0].flavor_name != "azureml":
        return None
    return workspace_from(orchestrator[0].configuration)
