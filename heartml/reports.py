"""Script-free HTML pages for the dashboard and MLflow: model comparison, evaluation report, LIME explanations."""

from __future__ import annotations

import json

import pandas as pd

from heartml import html
from heartml.evaluation import EvaluationReport
from heartml.explain import LimeExplanations

COMPARISON_HEADERS = {
    "family": "candidate", "selected": "selected", "cv_mean": "CV mean", "cv_std": "CV std",
    "train_score": "train", "tuning_trials": "trials", "cv_seconds": "CV s", "fit_seconds": "fit s",
}


def comparison_html(comparison: pd.DataFrame, title: str = "Model comparison") -> str:
    """Every candidate's CV (and, when present, test) scores; the selected one highlighted, parameters folded."""
    scoring = comparison["scoring"].iloc[0] if "scoring" in comparison else "score"
    columns = [c for c in comparison.columns if c not in ("params", "scoring")]
    headers = {**COMPARISON_HEADERS, **{c: c.replace("test_", "test ") for c in columns if c.startswith("test_")}}
    rows = comparison.to_dict("records")
    parameters = "".join(
        html.details(f"{row['family']} parameters",
                     html.table(html.definition_rows(json.loads(row["params"]).items())))
        for row in rows if "params" in row
    )
    return html.page(
        title,
        html.paragraph(f"CV columns: {scoring} on stratified folds of the training split (every transform refitted "
                       f"in each fold). Train: the final fit scored on its own training rows. Test columns: the "
                       f"untouched test split, threshold 0.5. Selection uses CV only."),
        html.table(rows, columns, headers, highlight=lambda row: bool(row.get("selected"))),
        html.heading("Parameters"),
        parameters,
    )


def evaluation_report_html(report: EvaluationReport) -> str:
    pct = f"{report.confidence:.0%}"
    metric_rows = [{"metric": name, "value": e.value, f"{pct} low": e.low, f"{pct} high": e.high}
                   for name, e in report.metrics.items()]
    point_rows = [p.model_dump() for p in report.operating_points]
    fit = report.fitting
    verdict_css = "verdict-ok" if fit.verdict == "ok" else "verdict-bad"
    fit_rows = html.definition_rows([
        (f"train {fit.scoring}", fit.train), (f"CV {fit.scoring}", fit.cv), (f"test {fit.scoring}", fit.test),
        ("train - CV gap", fit.train_cv_gap), ("max train - CV gap", fit.limits.max_train_cv_gap),
        ("CV - test gap", fit.cv_test_gap), ("max CV - test gap", fit.limits.max_cv_test_gap),
        ("floor", fit.limits.min_score),
    ])
    return html.page(
        f"Evaluation of {report.model_name}",
        html.paragraph(f"Untouched test split: {report.test_rows} patients, {report.test_positives} positive. "
                       f"Intervals: percentile bootstrap over patients, {report.bootstrap_resamples} resamples."),
        html.heading("Metrics (threshold 0.5)"),
        html.table(metric_rows),
        html.heading("Operating thresholds"),
        html.paragraph("Chosen on out-of-fold predictions of the training split, then measured on the test split."),
        html.table(point_rows, ["name", "threshold", "rule", "cv_sensitivity", "cv_specificity",
                                "test_sensitivity", "test_specificity", "test_precision"]),
        html.heading("Fitting check"),
        f"<p class='{verdict_css}'>verdict: {html.escape(fit.verdict)}</p>",
        html.paragraph("; ".join(fit.findings) or "no finding"),
        html.table(fit_rows),
    )


def explanations_html(explanations: LimeExplanations) -> str:
    """Global summary as bars, then one folded card per patient with its signed contributions."""
    top = explanations.global_importance
    scale = max((f.mean_abs_weight for f in top), default=0.0)
    global_rows = [{"feature": f.feature, "importance": f.mean_abs_weight, "bar": f.mean_abs_weight,
                    "mean weight": f.mean_weight, "patients in top": f.patients_in_top} for f in top]
    cards = []
    for patient in explanations.patients:
        local_scale = max((abs(c.weight) for c in patient.contributions), default=0.0)
        rows = [{"condition": c.condition, "effect": c.weight, "weight": c.weight} for c in patient.contributions]
        label = "" if patient.label is None else f", true label {patient.label}"
        record = html.table(html.definition_rows(patient.record.items()))
        cards.append(html.details(
            f"patient {patient.patient}: P({explanations.positive_class}) = {patient.probability:.3f}{label}",
            html.table(rows, ["condition", "effect", "weight"],
                       cell={"effect": lambda w, s=local_scale: html.signed_bar(w, s)})
            + html.paragraph(f"local model: intercept {patient.intercept:.3f}, prediction "
                             f"{patient.local_prediction:.3f}, R² {patient.local_r2:.2f}")
            + html.details("raw record", record),
        ))
    return html.page(
        f"LIME explanations ({explanations.model})",
        html.paragraph(f"{len(explanations.patients)} test patients, {explanations.num_samples} samples and up to "
                       f"{explanations.num_features} features per explanation, seed {explanations.seed}; "
                       f"{explanations.seconds:.1f} s on {explanations.n_jobs} worker(s). Weights are effects on "
                       f"P({explanations.positive_class}) in LIME's local linear model: red raises the risk, "
                       f"blue lowers it."),
        html.heading("Global importance: mean |weight| over patients"),
        html.table(global_rows, cell={"bar": lambda w: html.plain_bar(w, scale)}),
        html.heading("Patients"),
        "".join(cards),
    )
