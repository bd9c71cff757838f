"""MLflow logging of model building and evaluation, into the run the ZenML experiment tracker opened.

Tuning goes into one nested child run per family ("tune <family>"), with each trial as a step of the metric
series, so the parent run stays readable: final parameters, comparison, evaluation and the model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Dict

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from heartml.core.evaluation import EvaluationReport
from heartml.core.explain import LimeExplanations
from heartml.core.selection import Candidate
from heartml.core.shapley import ShapExplanations
from heartml.reports.pages import comparison_html, evaluation_report_html, explanations_html, shap_html
from heartml.reports.plots import lime_figure, shap_figure
from heartml.reports.rendered import once, png_once

MAX_PARAM_LENGTH = 500


def _param(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


def log_tuning(candidate: Candidate, scoring: str) -> None:
    """A nested run per tuned family: its search, every trial's CV score, the best parameters."""
    tuning = candidate.tuning
    with mlflow.start_run(run_name=f"tune {candidate.name}", nested=True) as run:
        mlflow.set_tags({"family": candidate.name, "search_method": tuning.method if tuning else "none",
                         **({"optuna_study": tuning.study} if tuning and tuning.study else {}),
                         "stopped_by_timeout": str(bool(tuning and tuning.stopped_by_timeout))})
        mlflow.log_params({k: _param(v) for k, v in candidate.params.items()})
        mlflow.log_metrics({f"cv_{scoring}_mean": candidate.cv.mean, f"cv_{scoring}_std": candidate.cv.std,
                            "cv_seconds": candidate.cv_seconds})
        if tuning:
            now = int(time.time() * 1000)
            best = float("-inf")
            series = []
            for trial in tuning.completed:  # a pruned trial's mean covers only its first folds
                best = max(best, trial.cv_mean)
                series += [Metric(f"trial_cv_{scoring}", trial.cv_mean, now, trial.number),
                           Metric(f"best_cv_{scoring}", best, now, trial.number)]
            MlflowClient().log_batch(run.info.run_id, metrics=series)
            mlflow.log_text(tuning.trials_frame().to_csv(index=False), f"tuning/{candidate.name}_trials.csv")


def log_selection(comparison: pd.DataFrame, selected: str, scoring: str, settings: Dict[str, object]) -> None:
    row = comparison.set_index("family")
    mlflow.log_params({"selected_family": selected, "scoring": scoring, **{k: _param(v) for k, v in settings.items()}})
    mlflow.log_metrics({f"cv_{scoring}_mean.{name}": float(row.loc[name, "cv_mean"]) for name in row.index})
    mlflow.log_metrics({f"cv_{scoring}_std.{name}": float(row.loc[name, "cv_std"]) for name in row.index})


def log_png(png: bytes, artifact_file: str) -> None:
    """PNG bytes as the run's artifact `artifact_file` ("folder/name.png")."""
    path = Path(artifact_file)
    with tempfile.TemporaryDirectory(prefix="heartml-png-") as folder:
        (Path(folder) / path.name).write_bytes(png)
        mlflow.log_artifact(str(Path(folder) / path.name), str(path.parent) if path.parent.parts else None)


def log_evaluation(report: EvaluationReport, metrics: Dict[str, float], comparison: pd.DataFrame,
                   figures: Dict[str, bytes]) -> None:
    """Test metrics with their intervals, thresholds, verdict, the report, the comparison and the figures (PNG)."""
    mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
    mlflow.log_metrics({f"test_{name}_ci_{side}": getattr(e, side) for name, e in report.metrics.items()
                        for side in ("low", "high")})
    mlflow.log_metrics({f"threshold_{p.name}": p.threshold for p in report.operating_points})
    mlflow.set_tag("fitting_verdict", report.fitting.verdict)
    mlflow.log_text(report.model_dump_json(indent=2), "evaluation/evaluation_report.json")
    mlflow.log_text(evaluation_report_html(report), "evaluation/evaluation_report.html")
    mlflow.log_text(comparison.to_csv(index=False), "evaluation/model_comparison.csv")
    mlflow.log_text(comparison_html(comparison), "evaluation/model_comparison.html")
    for name, png in figures.items():
        log_png(png, f"evaluation/{name}.png")


def log_explanations(explanations: LimeExplanations) -> None:
    """LIME timing, the explanations as HTML and JSON, and their figure."""
    mlflow.log_metrics({"lime_seconds": explanations.seconds, "lime_patients": len(explanations.patients)})
    mlflow.log_text(once(explanations_html, explanations), "explanations/lime.html")
    mlflow.log_text(explanations.model_dump_json(), "explanations/lime.json")
    log_png(png_once(lime_figure, explanations), "explanations/lime.png")


def log_shap(explanations: ShapExplanations) -> None:
    """SHAP timing and agreement with LIME, the values as HTML and JSON, and their figure."""
    metrics = {"shap_seconds": explanations.seconds, "shap_patients": len(explanations.patients)}
    if explanations.agreement:
        metrics.update(shap_lime_rank_correlation=explanations.agreement.global_rank_correlation,
                       shap_lime_top_overlap=explanations.agreement.top_overlap)
    if explanations.lime_stability:
        metrics.update(lime_seed_top_overlap=explanations.lime_stability.top_overlap,
                       lime_seed_rank_correlation=explanations.lime_stability.rank_correlation)
    mlflow.log_metrics(metrics)
    mlflow.log_text(once(shap_html, explanations), "explanations/shap.html")
    mlflow.log_text(explanations.model_dump_json(), "explanations/shap.json")
    log_png(png_once(shap_figure, explanations), "explanations/shap.png")
