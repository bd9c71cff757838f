"""Evaluation figures drawn with scikit-learn's display classes on plain matplotlib Figures (no pyplot state, no GUI
backend), plus their PNG conversion for ZenML visualizations and MLflow artifacts."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Dict, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from heartml.core.evaluation import OperatingPoint, sensitivity_specificity

if TYPE_CHECKING:
    from heartml.core.explain import LimeExplanations

FIGURE_SIZE = (5.5, 4.5)


def confusion_matrix_figure(y_true: np.ndarray, proba: np.ndarray, threshold: float,
                            class_names: Sequence[str]) -> Figure:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.subplots()
    ConfusionMatrixDisplay.from_predictions(y_true, (np.asarray(proba) >= threshold).astype(int),
                                            display_labels=list(class_names), cmap="Blues", colorbar=False, ax=ax)
    ax.set_title(f"Confusion matrix (test, threshold {threshold:.2f})")
    return figure


def roc_figure(y_true: np.ndarray, proba: np.ndarray, points: Sequence[OperatingPoint], name: str) -> Figure:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.subplots()
    RocCurveDisplay.from_predictions(y_true, proba, name=name, ax=ax, plot_chance_level=True)
    for point, marker in zip(points, "os^"):
        sensitivity, specificity = sensitivity_specificity(y_true, proba, point.threshold)
        ax.plot(1 - specificity, sensitivity, marker, markersize=8,
                label=f"{point.name} threshold {point.threshold:.2f}")
    ax.legend(loc="lower right")
    ax.set_title("ROC curve (test)")
    return figure


def precision_recall_figure(y_true: np.ndarray, proba: np.ndarray, name: str) -> Figure:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.subplots()
    PrecisionRecallDisplay.from_predictions(y_true, proba, name=name, ax=ax, plot_chance_level=True)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall curve (test)")
    return figure


def calibration_figure(y_true: np.ndarray, proba: np.ndarray, name: str, bins: int = 10) -> Figure:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.subplots()
    CalibrationDisplay.from_predictions(y_true, proba, n_bins=bins, strategy="quantile", name=name, ax=ax)
    ax.set_title(f"Calibration (test, {bins} quantile bins)")
    return figure


def to_image(figure: Figure, dpi: int = 110) -> Image.Image:
    """The figure as an in-memory PNG image (what ZenML's pillow materializer stores and shows)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    image = Image.open(buffer)
    image.load()
    return image


def evaluation_figures(y_true: np.ndarray, proba: np.ndarray, points: Sequence[OperatingPoint], name: str,
                       class_names: Sequence[str]) -> Dict[str, Figure]:
    """The four figures of the evaluation step, keyed by their artifact names."""
    return {
        "confusion_matrix": confusion_matrix_figure(y_true, proba, 0.5, class_names),
        "roc_curve": roc_figure(y_true, proba, points, name),
        "pr_curve": precision_recall_figure(y_true, proba, name),
        "calibration_curve": calibration_figure(y_true, proba, name),
    }


def lime_figure(explanations: "LimeExplanations", patient: Optional[int] = None) -> Figure:
    """Global mean |weight| per feature beside one patient's signed contributions (the first explained one)."""
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    overall, single = figure.subplots(1, 2)
    ranked = explanations.global_importance[::-1]
    overall.barh([f.feature for f in ranked], [f.mean_abs_weight for f in ranked], color="#486581")
    overall.set_title(f"Mean |LIME weight| over {len(explanations.patients)} patients")
    overall.set_xlabel(f"effect on P({explanations.positive_class})")
    chosen = explanations.patients[0] if patient is None else explanations.patient(patient)
    contributions = chosen.contributions[::-1]
    single.barh([c.condition for c in contributions], [c.weight for c in contributions],
                color=["#d64545" if c.weight >= 0 else "#3a7bd5" for c in contributions])
    single.axvline(0, color="#9aa5b1", linewidth=1)
    single.set_title(f"Patient {chosen.patient}: P({explanations.positive_class}) = {chosen.probability:.2f}")
    single.set_xlabel("LIME weight (red raises the risk)")
    return figure
