"""Stage 6, the registry: register the trained pipeline as a new MLflow model version with its provenance, complete
it and run the champion/challenger gate (`promote_model`), then document it (`write_model_card`).

The version is created `pending`; `promote_model` marks it complete once `register_model`'s outputs, including the
model files copied into the ZenML artifact store, are saved. The model card comes last because it records the
promotion decision.
"""

import atexit
import shutil
import tempfile
from datetime import timezone
from pathlib import Path
from typing import Dict, Optional, Tuple

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import ArtifactConfig, get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ArtifactType
from zenml.logger import get_logger

from heartml.core.dataset import DatasetSpec
from heartml.core.evaluation import EvaluationReport
from heartml.core.explain import LimeExplanations
from heartml.core.preprocessing import features_and_target
from heartml.core.shapley import ShapExplanations
from heartml.core.versioning import DataVersion, row_hashes, source_commit
from heartml.platform.zenml_registry import azureml_workspace_of_active_stack, mirror_stages_to_zenml
from heartml.registry.model_versions import (
    MODEL_CARD_TAG,
    RegisteredVersion,
    download_model_files,
    drift_reference,
    mark_complete,
    provenance_tags,
    register_model_version,
)
from heartml.registry.promotion import PromotionDecision, PromotionPolicy, advance_staging, run_gate
from heartml.reports.model_card import (
    MLFLOW_CARD_PATH,
    IntendedUse,
    ModelCard,
    ModelCardOptions,
    build_model_card,
    mlflow_card_uri,
)
from heartml.reports.pages import model_card_html
from heartml.reports.rendered import once
from materializers import ModelCardMaterializer

logger = get_logger(__name__)


# Never cached: every training run registers its own model version.
@step(experiment_tracker=True, enable_cache=False)
def register_model(
    model: Pipeline,
    test_metrics: Dict[str, float],
    evaluation_report: EvaluationReport,
    data_version: DataVersion,
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
    cv_predictions: pd.DataFrame,
    dataset: DatasetSpec,
    seed: int,
    git_commit: Optional[str] = None,  # set by run.py from the checkout that submitted the run
) -> Tuple[
    Annotated[RegisteredVersion, "registered_model"],
    Annotated[Path, ArtifactConfig(name="mlflow_model", artifact_type=ArtifactType.MODEL)],
]:
    """A new, pending MLflow version of the run's model: the whole pipeline behind record cleaning, its provenance
    tags, the decision threshold of `evaluation_report` (the one its metrics are at), and the content hashes of
    its training rows (which the promotion gate leaves out when it compares versions)."""
    context = get_step_context()
    decision_threshold = evaluation_report.decision_threshold
    zenml_model = context.model
    name = zenml_model.name  # one name, set once in the run configuration (`model.name`), in ZenML and MLflow
    run = context.pipeline_run
    tags = provenance_tags(
        test_metrics,
        model.named_steps["classifier"],
        data_version,
        training_date=(run.start_time or run.created).replace(tzinfo=timezone.utc).isoformat(timespec="seconds"),
        git_commit=git_commit or source_commit(Path(__file__).parent),
        zenml={"zenml_pipeline_run_id": str(run.id), "zenml_pipeline_run_name": run.name,
               "zenml_model_name": zenml_model.name, "zenml_model_version": str(zenml_model.number),
               "zenml_model_version_id": str(zenml_model.id)},
    )
    X_test, _ = features_and_target(test_set, dataset)
    registered = register_model_version(model, dataset, X_test.head(5), name, tags, decision_threshold,
                                        training_rows=row_hashes(train_set, dataset.model_features),
                                        reference=drift_reference(train_set, cv_predictions, dataset), seed=seed)
    # The same files in the stack's artifact store (local folder or az://), kept until ZenML has stored them.
    files = Path(tempfile.mkdtemp(prefix="mlflow-model-"))
    atexit.register(shutil.rmtree, files, ignore_errors=True)
    download_model_files(registered.model_uri, files)
    log_metadata(metadata=registered.model_dump(), infer_artifact=True, artifact_name="registered_model")
    log_metadata(metadata={"mlflow_model_uri": registered.model_uri, "mlflow_registered_model": name,
                           "mlflow_version": registered.version, "decision_threshold": decision_threshold},
                 infer_model=True)
    return registered, files


# Never cached: the decision depends on what is in production now, not on the inputs alone.
@step(experiment_tracker=True, enable_cache=False)
def promote_model(
    registered_model: RegisteredVersion,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    promotion: PromotionPolicy = PromotionPolicy(),
) -> Annotated[PromotionDecision, "promotion_decision"]:
    """Runs only after `register_model`'s outputs (the model files in the artifact store) are saved."""
    client = MlflowClient()
    name, version = registered_model.name, registered_model.version
    mark_complete(client, name, version)
    advance_staging(client, name, version)
    decision = run_gate(client, name, version, test_set, dataset, promotion)
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(name, version, key, value)
    mlflow.log_metrics({"promotion_rows_compared": decision.rows_compared,
                        **{f"promotion_{role}_{decision.metric}": score for role, score in
                           (("challenger", decision.challenger), ("champion", decision.champion))
                           if score is not None}})
    mlflow.set_tags({"promotion.decision": decision.decision, "promotion.reason": decision.reason[:5000]})
    for change in mirror_stages_to_zenml(client, name):
        logger.info(change)
    workspace = azureml_workspace_of_active_stack()
    if decision.promoted and workspace:  # the workspace's model registry names production beside MLflow
        from heartml.platform.azure_endpoint import register_in_workspace

        registered_there = register_in_workspace(workspace, client, name, version)
        logger.info("Registered in Azure ML workspace %s: model %s version %s", registered_there["workspace"],
                    registered_there["name"], registered_there["version"])
    logger.info("Promotion of %s version %s: %s (%s)", name, version, decision.decision, decision.reason)
    log_metadata(metadata={"promotion": decision.model_dump(exclude_none=True)}, infer_model=True)
    log_metadata(metadata=decision.model_dump(exclude_none=True), infer_artifact=True,
                 artifact_name="promotion_decision")
    return decision


# Never cached: it documents this run's version and its promotion, and writes to the MLflow registry.
@step(experiment_tracker=True, enable_cache=False, output_materializers={"model_card": ModelCardMaterializer})
def write_model_card(
    model: Pipeline,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    data_version: DataVersion,
    evaluation_report: EvaluationReport,
    lime_explanations: LimeExplanations,
    shap_explanations: ShapExplanations,
    registered_model: RegisteredVersion,
    promotion_decision: PromotionDecision,
    seed: int,
    card: ModelCardOptions = ModelCardOptions(),
) -> Annotated[ModelCard, "model_card"]:
    """The version's model card: a ZenML artifact (linked to the ZenML model version) and, as HTML and JSON,
    artifacts of the version's MLflow run, named in the version's description and its `model_card` tag."""
    card = card.model_copy(update={"bootstrap": card.bootstrap.model_copy(update={"seed": seed})})
    client = MlflowClient()
    name, version = registered_model.name, registered_model.version
    model_card = build_model_card(
        model, test_set, dataset, data_version, evaluation_report, lime_explanations, registered_model,
        promotion_decision, client.get_model_version(name, version).tags, intended_use(), card, shap_explanations,
    )
    run_id = registered_model.run_id or mlflow.active_run().info.run_id
    client.log_text(run_id, once(model_card_html, model_card), MLFLOW_CARD_PATH)
    client.log_text(run_id, model_card.model_dump_json(indent=2), MLFLOW_CARD_PATH.replace(".html", ".json"))
    card_uri = mlflow_card_uri(run_id)
    client.update_model_version(name, version, description=model_card.description(card_uri))
    client.set_model_version_tag(name, version, MODEL_CARD_TAG, card_uri)
    log_metadata(metadata={"model_card": {"mlflow_artifact": card_uri, **model_card.summary_metadata()}},
                 infer_model=True)
    logger.info("Model card of %s version %s: %s", name, version, card_uri)
    return model_card


def intended_use() -> IntendedUse:
    """What the ZenML model says it is for: this run's `model:` configuration, else the stored ZenML model."""
    configured = get_step_context().model
    stored = Client().get_model(configured.name)
    return IntendedUse(**{field: getattr(configured, field, None) or getattr(stored, field, None)
                          for field in IntendedUse.model_fields})
