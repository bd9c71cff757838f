"""Stage 5: the selected model on the untouched test split (metrics with intervals, thresholds, fitting check,
figures, comparison of all candidates), the quality gate, and LIME and SHAP explanations of test patients."""

from typing import Dict, Tuple, Union

import pandas as pd
from PIL import Image
from sklearn.pipeline import Pipeline
from typing_extensions import Annotated
from zenml import get_step_context, log_metadata, step
from zenml.integrations.pillow.materializers.pillow_image_materializer import PillowImageMaterializer
from zenml.logger import get_logger

from heartml.core.calibration import calibration_method
from heartml.core.dataset import DatasetSpec
from heartml.core.evaluation import (
    BootstrapOptions,
    EvaluationReport,
    ThresholdRule,
    comparison_with_test_metrics,
    enforce_quality_gate,
    evaluate_model,
)
from heartml.core.explain import ExplainOptions, LimeExplanations, explain_patients
from heartml.core.preprocessing import features_and_target
from heartml.core.shapley import ShapExplanations, ShapOptions, compare_with_lime, shap_patients
from heartml.reports.plots import as_pngs, evaluation_figures, png_image
from heartml.reports.tracking import log_evaluation, log_explanations, log_shap
from materializers import (
    EvaluationReportMaterializer,
    LimeExplanationsMaterializer,
    ModelComparisonMaterializer,
    ShapExplanationsMaterializer,
)

logger = get_logger(__name__)
FIGURES = ("confusion_matrix", "roc_curve", "pr_curve", "calibration_curve")


@step(
    experiment_tracker=True,
    output_materializers={
        "evaluation_report": EvaluationReportMaterializer,
        "model_comparison_report": ModelComparisonMaterializer,
        **{name: PillowImageMaterializer for name in FIGURES},
    },
)
def model_evaluation(
    model: Pipeline,
    model_comparison: pd.DataFrame,
    candidate_models: Dict[str, Pipeline],
    cv_predictions: pd.DataFrame,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    seed: int,
    bootstrap: BootstrapOptions = BootstrapOptions(),
    # A rule, or a bare number for a fixed threshold (`decision_threshold: 0.3`).
    decision_threshold: Union[ThresholdRule, float] = ThresholdRule(),
) -> Tuple[
    Annotated[Dict[str, float], "test_metrics"],
    Annotated[EvaluationReport, "evaluation_report"],
    Annotated[pd.DataFrame, "model_comparison_report"],
    Annotated[Image.Image, "confusion_matrix"],
    Annotated[Image.Image, "roc_curve"],
    Annotated[Image.Image, "pr_curve"],
    Annotated[Image.Image, "calibration_curve"],
]:
    """The decision threshold comes from its rule (config, or the dataset's `step_parameters`), chosen on
    out-of-fold training predictions; everything here is at it, and registration stores it with the version.
    `test_metrics`: flat point estimates. `evaluation_report`: the same with bootstrap intervals, the operating
    points, the calibration slope and intercept, and the fitting verdict against the dataset's `acceptance`."""
    bootstrap = bootstrap.model_copy(update={"seed": seed})
    rule = dataset.step_options("model_evaluation", "decision_threshold",
                                ThresholdRule.model_validate(decision_threshold))
    X_test, y_test = features_and_target(test_set, dataset)
    selected = str(model_comparison.loc[model_comparison["selected"], "family"].iloc[0])
    report, proba = evaluate_model(model, selected, X_test, y_test, model_comparison, cv_predictions, bootstrap,
                                   rule, dataset.acceptance, calibration_method(model.named_steps["classifier"]))
    metrics = report.point_estimates()  # the report's values: computed once, by the bootstrap's full-split pass
    comparison = comparison_with_test_metrics(model_comparison, candidate_models, X_test, y_test,
                                              report.decision_threshold)
    class_names = [f"no {dataset.target.column}", dataset.target.column]
    figures = as_pngs(evaluation_figures(y_test, proba, report.operating_points, selected, class_names,
                                         report.decision_threshold))

    log_evaluation(report, metrics, comparison, figures)

    log_metadata(metadata={"test_rows": len(test_set), **metrics}, infer_artifact=True, artifact_name="test_metrics")
    if get_step_context().model_version:  # the run's ZenML model version (Model Control Plane), when configured
        log_metadata(metadata={"evaluation": {**report.as_metadata(), **metrics}}, infer_model=True)
    images = [png_image(figures[name]) for name in FIGURES]
    return (metrics, report, comparison, *images)


@step
def quality_gate(evaluation_report: EvaluationReport, enabled: bool = True) -> None:
    """Fails the run (nothing gets registered) when the fitting check's verdict is not "ok" and the gate is on."""
    if enabled:
        enforce_quality_gate(evaluation_report.fitting, evaluation_report.model_name)


@step(experiment_tracker=True, output_materializers={"lime_explanations": LimeExplanationsMaterializer})
def explain_model(
    model: Pipeline,
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    seed: int,
    explain: ExplainOptions = ExplainOptions(),
) -> Annotated[LimeExplanations, "lime_explanations"]:
    """LIME over the raw clinical features for the configured test patients (all by default)."""
    X_train, _ = features_and_target(train_set, dataset)
    X_test, y_test = features_and_target(test_set, dataset)
    explanations = explain_patients(model, X_train, X_test, dataset, explain.model_copy(update={"seed": seed}), y_test)
    logger.info("LIME: %d test patients and %d stability reruns in %.1f s (%.1f explanations/s, %d workers, "
                "%d samples each)", len(explanations.patients), explanations.stability_reruns, explanations.seconds,
                explanations.patients_per_second, explanations.n_jobs, explanations.num_samples)
    log_explanations(explanations)
    return explanations


@step(experiment_tracker=True, output_materializers={"shap_explanations": ShapExplanationsMaterializer})
def explain_with_shap(
    model: Pipeline,
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
    lime_explanations: LimeExplanations,
    dataset: DatasetSpec,
    seed: int,
    shap: ShapOptions = ShapOptions(),
) -> Annotated[ShapExplanations, "shap_explanations"]:
    """SHAP values in the raw clinical features for the test patients LIME explained, and how far the two agree."""
    X_train, _ = features_and_target(train_set, dataset)
    X_test, _ = features_and_target(test_set, dataset)
    positions = [p.patient for p in lime_explanations.patients]
    explanations = compare_with_lime(
        shap_patients(model, X_train, X_test, positions, dataset, shap.model_copy(update={"seed": seed})),
        lime_explanations, shap.top_features)
    logger.info("SHAP (%s): %d test patients in %.1f s; against LIME: rank correlation %.2f, top-3 overlap %.2f",
                explanations.method, len(explanations.patients), explanations.seconds,
                explanations.agreement.global_rank_correlation, explanations.agreement.top_overlap)
    log_shap(explanations)
    return explanations
