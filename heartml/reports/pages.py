"""Script-free HTML pages for the dashboard and MLflow (templates in heartml/reports/templates/): model
comparison, evaluation report, LIME and SHAP explanations, model card, drift report."""

from __future__ import annotations

import json

import pandas as pd

from heartml.core.evaluation import EvaluationReport
from heartml.core.explain import LimeExplanations
from heartml.core.shapley import ShapExplanations
from heartml.monitoring.drift import DriftReport
from heartml.reports import html
from heartml.reports.model_card import NOT_STATED, ModelCard
from heartml.reports.plots import decision_curve_figure, to_svg

COMPARISON_HEADERS = {
    "family": "candidate", "selected": "selected", "cv_mean": "CV mean", "cv_std": "CV std",
    "train_score": "train", "tuning_trials": "trials", "pruned_trials": "pruned", "cv_seconds": "CV s",
    "fit_seconds": "fit s",
}


def comparison_html(comparison: pd.DataFrame, title: str = "Model comparison") -> str:
    """Every candidate's CV (and, when present, test) scores; the selected one highlighted, parameters folded."""
    scoring = comparison["scoring"].iloc[0] if "scoring" in comparison else "score"
    columns = [c for c in comparison.columns if c not in ("params", "scoring")]
    headers = {**COMPARISON_HEADERS, **{c: c.replace("test_", "test ") for c in columns if c.startswith("test_")}}
    rows = comparison.to_dict("records")
    parameters = [{"family": row["family"],
                   "table": html.table(html.definition_rows(json.loads(row["params"]).items()))}
                  for row in rows if "params" in row]
    return html.render(
        "comparison.html", title=title,
        intro=f"CV columns: {scoring} on stratified folds of the training split (every transform refitted in each "
              f"fold). Train: the final fit scored on its own training rows. Test columns: the untouched test split, "
              f"label metrics at the registered decision threshold. Selection uses CV only.",
        candidates=html.table(rows, columns, headers, highlight=lambda row: bool(row.get("selected"))),
        parameters=parameters,
    )


def evaluation_report_html(report: EvaluationReport) -> str:
    pct = f"{report.confidence:.0%}"
    metric_rows = [{"metric": name, "value": e.value, f"{pct} low": e.low, f"{pct} high": e.high}
                   for name, e in report.metrics.items()]
    point_rows = [p.model_dump() for p in report.operating_points]
    fit = report.fitting
    fit_rows = html.definition_rows([
        (f"train {fit.scoring}", fit.train), (f"CV {fit.scoring}", fit.cv), (f"test {fit.scoring}", fit.test),
        ("train - CV gap", fit.train_cv_gap), ("max train - CV gap", fit.limits.max_train_cv_gap),
        ("CV - test gap", fit.cv_test_gap), ("max CV - test gap", fit.limits.max_cv_test_gap),
        ("floor", fit.limits.min_score),
        *([("CV Brier", fit.cv_brier), ("Brier of predicting the prevalence", fit.prevalence_brier)]
          if fit.cv_brier is not None else []),
    ])
    calibration_rows = html.definition_rows([
        ("post-hoc calibration (kept only if it lowered the CV Brier score)", report.calibration_method),
        ("calibration slope on the test split (1 when calibrated; below 1: too extreme)", report.calibration.slope),
        ("calibration intercept on the test split (0 when calibrated)", report.calibration.intercept),
    ])
    return html.render(
        "evaluation.html", title=f"Evaluation of {report.model_name}",
        intro=f"Untouched test split: {report.test_rows} patients, {report.test_positives} positive. Intervals: "
              f"percentile bootstrap over patients, {report.bootstrap_resamples} resamples.",
        metrics=html.table(metric_rows),
        operating_points=html.table(point_rows, ["name", "threshold", "rule", "cv_sensitivity", "cv_specificity",
                                                 "test_sensitivity", "test_specificity", "test_precision"]),
        verdict=fit.verdict, findings="; ".join(fit.findings) or "no finding", fitting=html.table(fit_rows),
        threshold=f"{report.decision_threshold:g}", calibration=html.table(calibration_rows),
        threshold_rule=f"Registered decision threshold {report.decision_threshold:g} ({report.threshold_rule}): "
                       f"every label metric here, the confusion matrix, the model card and inference use it.",
    )


def explanations_html(explanations: LimeExplanations) -> str:
    """Global summary as bars, then one folded card per patient with its signed contributions (the first unfolded:
    one worked example in view, the others one click away)."""
    top = explanations.global_importance
    scale = max((f.mean_abs_weight for f in top), default=0.0)
    global_rows = [{"feature": f.feature, "importance": f.mean_abs_weight, "bar": f.mean_abs_weight,
                    "mean weight": f.mean_weight, "patients in top": f.patients_in_top} for f in top]
    patients = []
    for patient in explanations.patients:
        local_scale = max((abs(c.weight) for c in patient.contributions), default=0.0)
        rows = [{"condition": c.condition, "effect": c.weight, "weight": c.weight} for c in patient.contributions]
        label = "" if patient.label is None else f", true label {patient.label}"
        patients.append({
            "summary": f"patient {patient.patient}: P({explanations.positive_class}) = "
                       f"{patient.probability:.3f}{label}",
            "contributions": html.table(rows, ["condition", "effect", "weight"],
                                        cell={"effect": lambda w, s=local_scale: html.signed_bar(w, s),
                                              "weight": html.signed_cell}),
            "local_model": f"local model: intercept {patient.intercept:.3f}, prediction "
                           f"{patient.local_prediction:.3f}, R² {patient.local_r2:.2f}",
            "record": html.table(html.definition_rows(patient.record.items())),
        })
    return html.render(
        "explanations.html", title=f"LIME explanations ({explanations.model})",
        intro=f"{len(explanations.patients)} test patients, {explanations.num_samples} samples and up to "
              f"{explanations.num_features} features per explanation, seed {explanations.seed}; "
              f"{explanations.seconds:.1f} s on {explanations.n_jobs} worker(s) with "
              f"{explanations.stability_reruns} stability reruns. Weights are effects on "
              f"P({explanations.positive_class}) in LIME's local linear model: red raises the risk, blue lowers it.",
        importance=html.table(global_rows, cell={"bar": lambda w: html.plain_bar(w, scale),
                                                 "mean weight": html.signed_cell}),
        patients=patients,
    )


def shap_html(explanations: ShapExplanations) -> str:
    """Agreement with LIME, global mean |SHAP| as bars, then one folded card per patient (signed values)."""
    top = explanations.global_importance
    scale = max((f.mean_abs_value for f in top), default=0.0)
    global_rows = [{"feature": f.feature, "importance": f.mean_abs_value, "bar": f.mean_abs_value,
                    "mean value": f.mean_value} for f in top]
    agreement_rows = []
    if explanations.agreement:
        a = explanations.agreement
        agreement_rows += [("patients explained by both", a.patients),
                           ("rank correlation of global importances (Spearman)", a.global_rank_correlation),
                           (f"top-{a.top_features} features in common per patient (mean share)", a.top_overlap)]
    if explanations.lime_stability:
        s = explanations.lime_stability
        agreement_rows += [(f"LIME against itself, seeds {', '.join(map(str, s.seeds))}: top-3 in common "
                            f"({s.patients} patients)", s.top_overlap),
                           ("LIME against itself: rank correlation of |weights|", s.rank_correlation)]
    patients = []
    for patient in explanations.patients:
        ranked = sorted(patient.values.items(), key=lambda item: abs(item[1]), reverse=True)
        local_scale = max((abs(v) for _, v in ranked), default=0.0)
        rows = [{"feature": f, "effect": v, "value": v} for f, v in ranked]
        patients.append({
            "summary": f"patient {patient.patient}: P({explanations.positive_class}) = {patient.probability:.3f}"
                       + ("" if abs(patient.output - patient.probability) < 1e-9 else
                          f"; before calibration {patient.output:.3f}")
                       + f" = {patient.base_value:.3f} (background) {html.signed(sum(patient.values.values()))}",
            "contributions": html.table(rows, ["feature", "effect", "value"],
                                 cell={"effect": lambda v, s=local_scale: html.signed_bar(v, s),
                                       "value": html.signed_cell}),
        })
    return html.render(
        "shap.html", title=f"SHAP values ({explanations.model})",
        intro=f"{len(explanations.patients)} test patients (those LIME explained), {explanations.method} explainer: "
              f"{explanations.why}; against {explanations.background_rows} training rows, seed {explanations.seed}; "
              f"{explanations.seconds:.1f} s. Values are contributions to P({explanations.positive_class}) in the "
              f"raw clinical features and add up to the patient's probability: red raises the risk, blue lowers it.",
        agreement=html.table(html.definition_rows(agreement_rows)),
        importance=html.table(global_rows, cell={"bar": lambda v: html.plain_bar(v, scale),
                                                 "mean value": html.signed_cell}),
        patients=patients,
    )


def _estimate_rows(metrics, pct: str):
    return [{"metric": name, "value": e.value, f"{pct} interval": html.interval(e.low, e.high)}
            for name, e in metrics.items()]


def model_card_html(card: ModelCard) -> str:
    """The card as one static page: use and limits, provenance, performance, calibration, subgroups, drivers,
    promotion."""
    source = card.provenance
    use = card.intended_use
    pct = f"{card.confidence:.0%}"
    promoted = card.promotion.decision == "promoted"
    promotion = card.promotion
    threshold = card.threshold
    calibration = card.calibration

    def stated(text):
        return text or f"{NOT_STATED} (model: in the run configuration)"

    subgroup_rows = [
        {"attribute": g.attribute, "group": g.group, "patients": g.rows, "positives": g.positives,
         "ROC-AUC": g.roc_auc.value if g.roc_auc else None,
         f"{pct} interval": html.interval(g.roc_auc.low, g.roc_auc.high) if g.roc_auc else "",
         "sensitivity": g.sensitivity, "specificity": g.specificity, "Brier": g.brier, "note": g.note}
        for g in card.subgroups
    ]
    importance_scale = max((f.mean_abs_weight for f in card.global_importance), default=0.0)
    importance_rows = [{"feature": f.feature, "mean |weight|": f.mean_abs_weight, "bar": f.mean_abs_weight,
                        "mean weight": f.mean_weight, "patients in top": f.patients_in_top}
                       for f in card.global_importance]
    shap_rows, agreement_rows, shap_scale = [], [], 0.0
    if card.explainers:
        shap_scale = max((f.mean_abs_value for f in card.explainers.shap_importance), default=0.0)
        shap_rows = [{"feature": f.feature, "mean |SHAP|": f.mean_abs_value, "bar": f.mean_abs_value,
                      "mean value": f.mean_value} for f in card.explainers.shap_importance]
        if card.explainers.agreement:
            a = card.explainers.agreement
            agreement_rows += [("SHAP vs LIME: rank correlation of global importances", a.global_rank_correlation),
                               (f"SHAP vs LIME: top-{a.top_features} features in common per patient", a.top_overlap)]
        if card.explainers.lime_stability:
            agreement_rows.append(("LIME vs LIME with other seeds: top-3 in common",
                                   card.explainers.lime_stability.top_overlap))
    bin_rows = [{"predicted": html.interval(b.low, b.high, 2), "patients": b.rows,
                 "mean predicted": b.mean_predicted, "observed rate": b.observed_rate} for b in calibration.bins]
    def section(heading, *tables, lead="", lead_css="note", after="", figure=""):
        return {"heading": heading, "tables": list(tables), "lead": lead, "lead_css": lead_css, "after": after,
                "figure": figure}

    fairness_rows = [{"attribute": f.attribute, "groups compared": ", ".join(f.groups) or "none",
                      "equalized-odds difference": f.equalized_odds_difference, "warning above": f.limit,
                      "warning": f.warning or "none"} for f in card.fairness]
    curve_rows = [{"threshold": p.threshold, "model": p.model, "treat all": p.treat_all, "treat none": p.treat_none,
                   "model better than both": p.model > max(p.treat_all, p.treat_none)}
                  for p in card.decision_curve]
    registered_point = next((p for p in card.decision_curve if p.registered), None)
    explainers = card.explainers

    fitting = f"Fitting check: {card.fitting.verdict}" + (
        f" ({'; '.join(card.fitting.findings)})" if card.fitting.findings else "") + \
        f"; {card.bootstrap_resamples} bootstrap resamples."
    rates = ("test_sensitivity", "test_specificity", "cv_sensitivity", "cv_specificity")
    sections = [
        section("Intended use and limits", html.table(html.definition_rows([
            ("description", stated(use.description)), ("intended use", stated(use.use_cases)),
            ("users", stated(use.audience)), ("limitations", stated(use.limitations)),
            ("trade-offs", stated(use.trade_offs)), ("ethical considerations", stated(use.ethics)),
            ("license", stated(use.license)),
        ]))),
        section("Data and provenance", html.table(html.definition_rows([
            ("dataset", f"{source.data.dataset}: {source.dataset_description}"),
            ("source", source.data.source), ("data hash (sha256)", source.data.data_hash),
            ("rows x columns", f"{source.data.rows} x {source.data.columns}"),
            ("test split", f"{source.test_rows} patients, {source.test_positives} positive"),
            ("training date", source.training_date), ("code version (git commit)", source.git_commit),
            ("pipeline run", f"{source.pipeline_run} ({source.pipeline_run_id})"),
            ("ZenML model version", f"{source.zenml_model} {source.zenml_model_version}"),
            ("MLflow model", f"{source.model_uri} (run {source.mlflow_run_id})"),
        ]))),
        section(f"Performance on the untouched test split (threshold {threshold.threshold:g}, {pct} bootstrap "
                f"intervals)",
                html.table(_estimate_rows(card.metrics, pct)), after=fitting),
        section("Decision threshold",
                html.table([p.model_dump() for p in threshold.operating_points],
                           ["name", "threshold", "rule", *rates], {c: c.replace("_", " ") for c in rates},
                           highlight=lambda row: abs(row["threshold"] - threshold.threshold) < 1e-12),
                lead=f"Registered threshold {threshold.threshold:g} (used by batch inference and the promotion "
                     f"gate): test sensitivity {threshold.test_sensitivity:.3f}, specificity "
                     f"{threshold.test_specificity:.3f}. Operating points, chosen on out-of-fold training "
                     f"predictions:", lead_css="key"),
        section("Calibration", html.table(html.definition_rows([
            ("Brier score", f"{calibration.brier.value:.3f} ({pct} interval "
                            f"{html.interval(calibration.brier.low, calibration.brier.high)})"),
            ("mean predicted vs observed rate", f"{calibration.mean_predicted:.3f} vs {calibration.observed_rate:.3f}"),
            ("expected calibration error", f"{calibration.expected_calibration_error:.3f}"),
            ("calibration slope / intercept", f"{calibration.slope:.2f} / {calibration.intercept:+.2f} "
                                              f"(1 / 0 when calibrated; slope below 1: too extreme)"),
            ("post-hoc calibration", calibration.method if calibration.method != "none" else
             "none (it did not lower the out-of-fold Brier score, or it is off)"),
        ])), html.table(bin_rows)),
        section("Decision curve", html.table(curve_rows, highlight=lambda row: registered_point is not None and
                                             abs(row["threshold"] - registered_point.threshold) < 1e-12),
                figure=to_svg(decision_curve_figure(card.decision_curve, source.classifier)),
                lead="Net benefit on the test split: true positives minus false positives weighted by the odds of "
                     "the threshold probability (the harm of a false alarm a clinician accepts to find one case), "
                     "against treating everyone and no one. The registered threshold is highlighted."
                     + (f" There the model's net benefit is {registered_point.model:.3f}, treat-all's "
                        f"{registered_point.treat_all:.3f}." if registered_point else "")),
        section(f"Subgroups (threshold {threshold.threshold:g})", html.table(subgroup_rows),
                lead="Metrics per group of the test split (fairlearn MetricFrame); intervals widen as groups "
                     "shrink, so read them with the counts."),
        section("Fairness", html.table(fairness_rows),
                lead=("; ".join(card.warnings) if card.warnings else
                      "Equalized-odds difference (fairlearn): the larger of the between-group gaps in sensitivity "
                      "and in false-positive rate at the registered threshold; no role exceeds its limit."),
                lead_css="verdict-bad" if card.warnings else "note"),
        section(f"Global LIME importance ({card.explained_patients} test patients)",
                html.table(importance_rows, cell={"bar": lambda w: html.plain_bar(w, importance_scale),
                                                  "mean weight": html.signed_cell})),
        *([section(f"Global SHAP importance ({explainers.shap_method} explainer)",
                   html.table(shap_rows, cell={"bar": lambda v: html.plain_bar(v, shap_scale),
                                               "mean value": html.signed_cell}),
                   html.table(html.definition_rows(agreement_rows)))] if explainers else []),
        section("Promotion decision", html.table(html.definition_rows([
            ("decision", promotion.decision.replace("_", " ")), ("reason", promotion.reason),
            ("metric (margin)", f"{promotion.metric} ({promotion.margin:g})"),
            ("test rows compared (neither version trained on them)",
             f"{promotion.rows_compared} ({promotion.rows_left_out} left out)"),
            (f"challenger (version {promotion.challenger_version})",
             promotion.challenger if promotion.challenger is not None else "not compared"),
            (f"champion (version {promotion.champion_version or 'none'})",
             promotion.champion if promotion.champion is not None else "none"),
            ("production now", promotion.production_version or "none"),
            ("staging now", promotion.staging_version or "none"),
        ]))),
    ]
    return html.render(
        "model_card.html", title=card.title, promoted=promoted, sections=sections,
        promotion_line=f"{promotion.decision.replace('_', ' ')} (production is version "
                       f"{promotion.production_version or 'none'})",
        intro=f"{source.classifier} ({source.estimator}) predicting {source.target}; trained {source.training_date}; "
              f"card written {card.created}.",
    )


DRIFT_HEADERS = {"column": "column", "kind": "test of", "method": "method", "threshold": "threshold",
                 "score": "score", "drifted": "drift", "reference": "training", "current": "scored"}


def drift_html(report: DriftReport) -> str:
    """The verdict, then one row per test (drifted ones highlighted; untested ones say why)."""
    rows = [{**test.model_dump(), "drifted": "yes" if test.drifted else ("not tested" if test.note else "no"),
             "method": test.method or test.note} for test in report.tests]
    return html.render(
        "drift.html", title=f"Drift: {report.model_name} version {report.model_version}",
        verdict=f"{report.verdict} (gate: {report.gate})", drifted=report.drift_detected,
        intro=f"{report.current_rows} scored records ({report.source}) against {report.reference_rows} training rows "
              f"of version {report.model_version} (their out-of-fold probabilities for the prediction test), "
              f"{report.created:%Y-%m-%d %H:%M} UTC. Evidently's stat tests; p-value thresholds are divided by the "
              f"number of p-value tests. A drift score below a p-value threshold, or a distance at or above its "
              f"threshold, is drift.",
        tests=html.table(rows, list(DRIFT_HEADERS), DRIFT_HEADERS, highlight=lambda row: row["drifted"] == "yes"),
    )
