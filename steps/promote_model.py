"""Stage 7: complete the registration, then the champion/challenger gate over the MLflow aliases."""

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from typing_extensions import Annotated
from zenml import log_metadata, step
from zenml.logger import get_logger

from heartml.dataset import DatasetSpec
from heartml.promotion import PromotionDecision, PromotionPolicy, advance_staging, mirror_stages_to_zenml, run_gate
from heartml.registry import RegisteredVersion, mark_complete

logger = get_logger(__name__)


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
    mlflow.log_metrics({f"promotion_challenger_{decision.metric}": decision.challenger,
                        **({f"promotion_champion_{decision.metric}": decision.champion}
                           if decision.champion is not None else {})})
    mlflow.set_tags({"promotion.decision": decision.decision, "promotion.reason": decision.reason[:5000]})
    for change in mirror_stages_to_zenml(client, name):
        logger.info(change)
    logger.info("Promotion of %s version %s: %s (%s)", name, version, decision.decision, decision.reason)
    log_metadata(metadata={"promotion": decision.model_dump(exclude_none=True)}, infer_model=True)
    log_metadata(metadata=decision.model_dump(exclude_none=True), infer_artifact=True, artifact_name="promotion_decision")
    return decision
