"""Evaluation figures drawn with scikit-learn's display classes on plain matplotlib Figures (no pyplot state, no GUI
backend), plus their PNG conversion for ZenML visualizations and MLflow artifacts."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Dict, Optional, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from PIL import Image
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from heartml.core.evaluation import OperatingPoint, sensitivity_specificity

if TYPE_CHECKING:
    from heartml.core.explain import LimeExplanations
    from heartml.core.shapley import ShapExplanations
    from heartml.reports.model_card import NetBenefit

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


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def as_pngs(figures: Dict[str, Figure], dpi: int = 110) -> Dict[str, bytes]:
    """Figures drawn once, as PNG: the step logs the bytes to MLflow and stores them as images in ZenML."""
    return {name: png_bytes(figure, dpi) for name, figure in figures.items()}


def png_image(png: bytes) -> Image.Image:
    """A PNG as an in-memory image (what ZenML's pillow materializer stores and shows)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def evaluation_figures(y_true: np.ndarray, proba: np.ndarray, points: Sequence[OperatingPoint], name: str,
                       class_names: Sequence[str], threshold: float) -> Dict[str, Figure]:
    """The four figures of the evaluation step, keyed by their artifact names; the confusion matrix at the
    registered decision threshold."""
    return {
        "confusion_matrix": confusion_matrix_figure(y_true, proba, threshold, class_names),
        "roc_curve": roc_figure(y_true, proba, points, name),
        "pr_curve": precision_recall_figure(y_true, proba, name),
        "calibration_curve": calibration_figure(y_true, proba, name),
    }


def _global_and_patient_figure(global_bars: Sequence[tuple], global_title: str, positive_class: str,
                               patient_bars: Sequence[tuple], patient_title: str, patient_xlabel: str) -> Figure:
    """Global importance bars (strongest on top) beside one patient's signed bars (red raises the risk)."""
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    overall, single = figure.subplots(1, 2)
    overall.barh([name for name, _ in global_bars[::-1]], [value for _, value in global_bars[::-1]], color="#486581")
    overall.set_title(global_title)
    overall.set_xlabel(f"effect on P({positive_class})")
    ordered = list(patient_bars)[::-1]
    single.barh([name for name, _ in ordered], [value for _, value in ordered],
                color=["#d64545" if value >= 0 else "#3a7bd5" for _, value in ordered])
    single.axvline(0, color="#9aa5b1", linewidth=1)
    single.set_title(patient_title)
    single.set_xlabel(patient_xlabel)
    return figure


def lime_figure(explanations: "LimeExplanations", patient: Optional[int] = None) -> Figure:
    """Global mean |weight| per feature beside one patient's signed contributions (the first explained one)."""
    chosen = explanations.patients[0] if patient is None else explanations.patient(patient)
    return _global_and_patient_figure(
        [(f.feature, f.mean_abs_weight) for f in explanations.global_importance],
        f"Mean |LIME weight| over {len(explanations.patients)} patients", explanations.positive_class,
        [(c.condition, c.weight) for c in chosen.contributions],
        f"Patient {chosen.patient}: P({explanations.positive_class}) = {chosen.probability:.2f}",
        "LIME weight (red raises the risk)")


def shap_figure(explanations: "ShapExplanations", patient: Optional[int] = None) -> Figure:
    """Global mean |SHAP value| per raw feature beside one patient's signed values (the first explained one)."""
    chosen = explanations.patients[0] if patient is None else next(p for p in explanations.patients
                                                                      if p.patient == patient)
    return _global_and_patient_figure(
        [(f.feature, f.mean_abs_value) for f in explanations.global_importance],
        f"Mean |SHAP value| over {len(explanations.patients)} patients ({explanations.method})",
        explanations.positive_class,
        sorted(chosen.values.items(), key=lambda item: abs(item[1]), reverse=True),
        f"Patient {chosen.patient}: P({explanations.positive_class}) = {chosen.probability:.2f} "
        f"(background {chosen.base_value:.2f})", "SHAP value (red raises the risk)")


def decision_curve_figure(points: Sequence["NetBenefit"], name: str) -> Figure:
    """Net benefit of the model, treat-all and treat-none over threshold probabilities; registered one marked."""
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    thresholds = [p.threshold for p in points]
    model = [p.model for p in points]
    ax.plot(thresholds, model, color="#d64545", linewidth=2, label=name)
    ax.plot(thresholds, [p.treat_all for p in points], color="#486581", linestyle="--", label="treat all")
    ax.plot(thresholds, [p.treat_none for p in points], color="#9aa5b1", linestyle=":", label="treat none")
    for point in points:
        if point.registered:
            ax.plot(point.threshold, point.model, "o", color="#d64545", markersize=9,
                    label=f"registered threshold {point.threshold:g}")
    top = max(max(model), max(p.treat_all for p in points), 0.01)
    ax.set_ylim(-0.05 * top - 0.01, top * 1.1)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title("Decision curve (test split)")
    ax.legend(loc="upper right")
    return figure


def to_svg(figure: Figure) -> str:
    """The figure as inline SVG markup (no script, no external reference), for static HTML pages."""
    buffer = io.StringIO()
    with rc_context({"svg.fonttype": "none"}):  # text stays text: readable, searchable, smaller
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]
