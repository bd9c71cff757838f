"""Training pipeline: ingestion -> preprocessing -> features -> model -> evaluation (+ gate, LIME and SHAP)
-> registry -> promotion -> model card."""

from typing import Optional

from zenml import pipeline

from heartml.core.dataset import load_dataset_spec
from steps.data_ingestion import data_ingestion
from steps.data_preprocessing import data_preprocessing
from steps.feature_engineering import feature_engineering
from steps.model_building import model_building
from steps.model_evaluation import explain_model, explain_with_shap, model_evaluation, quality_gate
from steps.register_model import promote_model, register_model, write_model_card


# The execution mode comes from the stack declaration (fail_fast on local stacks; AzureML does not support it).
@pipeline
def training_pipeline(
    dataset_config: str = "configs/datasets/heart.yaml", source: Optional[str] = None, seed: int = 42
) -> None:
    # The description's content (not its path) becomes a step parameter, so editing it invalidates the cache.
    dataset = load_dataset_spec(dataset_config)
    # One seed for the run: split, features, folds, samplers, estimators, bootstrap, LIME.
    raw_dataset, data_version, _ = data_ingestion(dataset=dataset, source=source)
    train_set, test_set, preprocessing = data_preprocessing(raw_dataset=raw_dataset, dataset=dataset, seed=seed)
    feature_pipeline = feature_engineering(preprocessing=preprocessing, dataset=dataset, seed=seed)
    model, model_comparison, candidate_models, cv_predictions = model_building(
        train_set=train_set, feature_pipeline=feature_pipeline, dataset=dataset, seed=seed
    )
    test_metrics, evaluation_report, *_ = model_evaluation(
        model=model, model_comparison=model_comparison, candidate_models=candidate_models,
        cv_predictions=cv_predictions, test_set=test_set, dataset=dataset, seed=seed,
    )
    lime_explanations = explain_model(model=model, train_set=train_set, test_set=test_set, dataset=dataset,
                                      seed=seed)
    shap_explanations = explain_with_shap(model=model, train_set=train_set, test_set=test_set,
                                          lime_explanations=lime_explanations, dataset=dataset, seed=seed)
    quality_gate(evaluation_report=evaluation_report)
    registered_model, _ = register_model(
        model=model, test_metrics=test_metrics, evaluation_report=evaluation_report, data_version=data_version,
        train_set=train_set, test_set=test_set, cv_predictions=cv_predictions, dataset=dataset, seed=seed,
        after="quality_gate",
    )
    promotion_decision = promote_model(registered_model=registered_model, test_set=test_set, dataset=dataset)
    write_model_card(
        model=model, test_set=test_set, dataset=dataset, data_version=data_version,
        evaluation_report=evaluation_report, lime_explanations=lime_explanations, shap_explanations=shap_explanations,
        registered_model=registered_model, promotion_decision=promotion_decision, seed=seed,
    )
