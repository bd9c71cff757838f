"""The model card of a registered model version: what it is for, what it was trained on, how well it does overall,
per subgroup and in calibration, what drives it, and whether it went to production.

Everything comes from what the pipeline already produced (evaluation report, LIME explanations, data version,
registry record, promotion decision) plus predictions of the model on the same untouched test split, for the
subgroup and calibration figures. The MLflow version's provenance tags are the record of when and from which
code the version was trained, so the card reads them from there.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    equalized_odds_difference,
    true_negative_rate,
    true_positive_rate,
)
from pydantic import BaseModel, Field, field_validator
from sklearn.metrics import brier_score_loss
from sklearn.pipeline import Pipeline

from heartml.core.calibration import base_classifier
from heartml.core.dataset import DatasetSpec
from heartml.core.evaluation import (
    BootstrapOptions,
    Estimate,
    EvaluationReport,
    FittingCheck,
    OperatingPoint,
    bootstrap_roc_auc,
    calibration_fit,
    sensitivity_specificity,
)
from heartml.core.explain import FeatureImportance, LimeExplanations, LimeStability
from heartml.core.preprocessing import features_and_target
from heartml.core.shapley import Agreement, ShapExplanations, ShapImportance
from heartml.core.transforms import assign_bands, band_labels
from heartml.core.versioning import DataVersion
from heartml.registry.model_versions import RegisteredVersion
from heartml.registry.promotion import PromotionDecision

NOT_STATED = "not stated"
MLFLOW_CARD_PATH = "model_card/model_card.html"  # in the registered version's MLflow run, JSON beside it


def mlflow_card_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{MLFLOW_CARD_PATH}"


class ModelCardOptions(BaseModel):
    # Bands of numeric subgroup roles, as the age_bands feature cuts them: [50, 60] -> "under 50", "50-60", "60+".
    bands: Dict[str, List[float]] = Field(default_factory=lambda: {"age": [50.0, 60.0]})  # cuts per numeric role
    min_group_rows: int = Field(10, ge=2)  # smaller groups are listed with their counts but no metrics
    calibration_bins: int = Field(5, ge=2)  # equal-count bins of predicted probability
    top_features: int = Field(10, ge=1)  # of the global LIME and SHAP importances
    bootstrap: BootstrapOptions = BootstrapOptions()  # subgroup ROC-AUC intervals
    # A warning on the card when a subgroup role's equalized-odds difference (fairlearn: the larger of the gaps in
    # sensitivity and in false-positive rate between its groups, at the decision threshold) exceeds this.
    max_equalized_odds_difference: float = Field(0.10, ge=0, le=1)  # warning above this, per subgroup role
    # Decision curve: net benefit at these threshold probabilities, and at the registered threshold.
    decision_curve: List[float] = Field(default_factory=lambda: [round(0.05 * k, 2) for k in range(1, 20)])  # p_t

    @field_validator("bands")
    @classmethod
    def _increasing(cls, value: Dict[str, List[float]]) -> Dict[str, List[float]]:
        for role, edges in value.items():
            if not edges or any(a >= b for a, b in zip(edges, edges[1:])):
                raise ValueError(f"bands.{role}: edges must be a non-empty, increasing list, got {edges}")
        return value


class IntendedUse(BaseModel):
    """The ZenML model's own description fields (`model:` in the run configuration)."""

    description: Optional[str] = None
    use_cases: Optional[str] = None
    audience: Optional[str] = None
    limitations: Optional[str] = None
    trade_offs: Optional[str] = None
    ethics: Optional[str] = None
    license: Optional[str] = None


class Provenance(BaseModel):
    registered_model: str
    version: str
    model_uri: str
    mlflow_run_id: Optional[str]
    classifier: str  # the selected candidate (family or soft_voting)
    estimator: str  # its classifier class
    training_date: str
    git_commit: str
    pipeline_run: str
    pipeline_run_id: str
    zenml_model: str
    zenml_model_version: str
    data: DataVersion
    dataset_description: str
    target: str
    test_rows: int
    test_positives: int


class DecisionThreshold(BaseModel):
    threshold: float  # registered with the version; inference and the promotion gate use it
    test_sensitivity: float
    test_specificity: float
    operating_points: List[OperatingPoint]  # from the evaluation: default 0.5 and screening


class CalibrationBin(BaseModel):
    low: float  # predicted probability range of the bin
    high: float
    rows: int
    mean_predicted: float
    observed_rate: float


class Calibration(BaseModel):
    method: str = "none"  # post-hoc calibration the model carries: none | sigmoid | isotonic
    brier: Estimate
    mean_predicted: float  # calibration in the large: compare with the observed rate
    observed_rate: float
    expected_calibration_error: float  # row-weighted mean |observed - predicted| over the bins
    slope: float  # logistic recalibration of the logit: 1 and 0 when calibrated; slope < 1: too extreme
    intercept: float
    bins: List[CalibrationBin]


class SubgroupMetrics(BaseModel):
    attribute: str  # the subgroup role, e.g. "sex", "age"
    column: str
    group: str
    rows: int
    positives: int
    roc_auc: Optional[Estimate] = None
    sensitivity: Optional[float] = None  # at the decision threshold
    specificity: Optional[float] = None
    brier: Optional[float] = None
    note: str = ""  # why metrics are missing


class Fairness(BaseModel):
    """fairlearn's equalized-odds difference of one subgroup role, over its groups with enough patients."""

    attribute: str
    groups: List[str]  # the groups compared (at least `min_group_rows` patients and both outcomes)
    equalized_odds_difference: Optional[float] = None  # None: fewer than two groups to compare
    limit: float
    warning: str = ""


class NetBenefit(BaseModel):
    threshold: float  # threshold probability p_t: a clinician trades one missed case for (1 - p_t) / p_t false alarms
    model: float  # net benefit of treating those the model flags at p_t: TP/n - FP/n * p_t / (1 - p_t)
    treat_all: float  # prevalence - (1 - prevalence) * p_t / (1 - p_t)
    treat_none: float = 0.0
    registered: bool = False  # the registered decision threshold


class Explainers(BaseModel):
    """How the two explanations rank the raw features, and how far they agree."""

    shap_method: str
    shap_importance: List[ShapImportance]  # strongest first
    agreement: Optional[Agreement] = None
    lime_stability: Optional[LimeStability] = None


class ModelCard(BaseModel):
    """One registered model version, documented (`model_card` artifact; also in MLflow)."""

    created: str
    intended_use: IntendedUse
    provenance: Provenance
    metrics: Dict[str, Estimate]  # test split, at the registered decision threshold
    confidence: float
    bootstrap_resamples: int
    fitting: FittingCheck
    calibration: Calibration
    threshold: DecisionThreshold
    subgroups: List[SubgroupMetrics]
    fairness: List[Fairness]
    decision_curve: List[NetBenefit]
    global_importance: List[FeatureImportance]  # LIME, strongest first
    explained_patients: int
    explainers: Optional[Explainers] = None
    promotion: PromotionDecision

    @property
    def warnings(self) -> List[str]:
        return [f.warning for f in self.fairness if f.warning]

    @property
    def title(self) -> str:
        return f"Model card: {self.provenance.registered_model} version {self.provenance.version}"

    def description(self, artifact_uri: str) -> str:
        """A few plain lines for the MLflow model version (its page renders them, its version table shows them raw)."""
        auc = self.metrics.get("roc_auc")
        pct = f"{self.confidence:.0%}"
        lines = [
            f"Model card: {artifact_uri} (HTML; JSON beside it), also the ZenML artifact model_card.",
            f"{self.provenance.classifier} trained {self.provenance.training_date} from commit "
            f"{self.provenance.git_commit[:12]} on data {self.provenance.data.data_hash[:12]}.",
        ]
        if auc is not None:
            lines.append(f"Test ROC-AUC {auc.value:.3f} ({pct} CI {auc.low:.3f}–{auc.high:.3f}); threshold "
                         f"{self.threshold.threshold:g}: sensitivity {self.threshold.test_sensitivity:.2f}, "
                         f"specificity {self.threshold.test_specificity:.2f}.")
        lines.append(f"Promotion: {self.promotion.decision.replace('_', ' ')}: {self.promotion.reason}")
        return "\n\n".join(lines)

    def summary_metadata(self) -> Dict[str, object]:
        """Flat values for ZenML metadata."""
        return {
            "decision": self.promotion.decision,
            "decision_threshold": self.threshold.threshold,
            "test_sensitivity": self.threshold.test_sensitivity,
            "test_specificity": self.threshold.test_specificity,
            "expected_calibration_error": self.calibration.expected_calibration_error,
            "calibration": self.calibration.method,
            "calibration_slope": self.calibration.slope,
            "equalized_odds_difference": {f.attribute: f.equalized_odds_difference for f in self.fairness
                                          if f.equalized_odds_difference is not None},
            "warnings": self.warnings or "none",
            "subgroup_rows": {f"{g.attribute}={g.group}": g.rows for g in self.subgroups},
            "top_features": [f.feature for f in self.global_importance[:5]],
        }


# ---------------------------------------------------------------------------------------------------------------
# Subgroups


def subgroup_columns(dataset: DatasetSpec, options: ModelCardOptions, frame: pd.DataFrame) -> Dict[str, pd.Series]:
    """Role -> the group of each row: categories for categorical roles, bands for numeric ones."""
    groups = {}
    for role, column in dataset.subgroups.items():
        if dataset.features[column].kind == "numeric":
            if role in options.bands:
                groups[role] = assign_bands(frame[column], options.bands[role])
        else:
            groups[role] = frame[column].astype(object).where(frame[column].notna(), None)
    return groups


def _group_order(dataset: DatasetSpec, options: ModelCardOptions, role: str, present: Sequence[str]) -> List[str]:
    column = dataset.subgroups[role]
    declared = band_labels(options.bands[role]) if role in options.bands and \
        dataset.features[column].kind == "numeric" else list(dataset.features[column].categories or [])
    return [g for g in declared if g in present] + sorted(set(present) - set(declared), key=str)


def _both_outcomes(metric):
    """A metric that is undefined (NaN) on a group with one outcome only, instead of raising."""
    def guarded(y_true, y_pred, sample_weight):
        y_true = np.asarray(y_true)
        return float(metric(y_true, y_pred, sample_weight=sample_weight)) if 0 < y_true.sum() < len(y_true) \
            else float("nan")
    return guarded


def _confusion_counts(y: np.ndarray, flagged: np.ndarray, membership: pd.Series) -> pd.DataFrame:
    """Each (group, outcome, flag) of the patients with a known group once, with its number of patients.

    Rates at a threshold depend on nothing else, so fairlearn measures them on these few rows weighted by
    `patients`: the same values as on every patient, where its MetricFrame stacks each column value by value
    (0.25 s per metric and group at 200k patients, 11 s of a million-row model card)."""
    known = membership.notna().to_numpy()
    return (pd.DataFrame({"group": membership[known].astype(str).to_numpy(), "y": y[known], "flagged": flagged[known]})
            .value_counts().rename("patients").reset_index())


def _weighted(counts: pd.DataFrame, *metrics: str) -> Dict[str, Dict[str, np.ndarray]]:
    return {metric: {"sample_weight": counts["patients"].to_numpy()} for metric in metrics}


def subgroup_metrics(y_true: pd.Series, proba: np.ndarray, groups: Mapping[str, pd.Series], columns: Mapping[str, str],
                     order: Mapping[str, Sequence[str]], threshold: float,
                     options: ModelCardOptions) -> List[SubgroupMetrics]:
    """Per group: counts, sensitivity and specificity at `threshold` through fairlearn's MetricFrame (on the
    confusion counts), Brier score (scikit-learn, per group); ROC-AUC with its interval from
    heartml.core.evaluation's vectorized bootstrap over the group's patients (MetricFrame's own `n_boot` recomputes
    every metric per resample: 18 s for 1000 on 184 patients)."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    flagged = (p >= threshold).astype(int)
    rows = []
    for role, membership in groups.items():
        counts = _confusion_counts(y, flagged, membership)
        rates = MetricFrame(metrics={"sensitivity": _both_outcomes(true_positive_rate),
                                     "specificity": _both_outcomes(true_negative_rate)},
                            y_true=counts["y"], y_pred=counts["flagged"], sensitive_features=counts["group"],
                            sample_params=_weighted(counts, "sensitivity", "specificity")).by_group
        patients = counts.groupby("group")["patients"].sum()
        positives = counts[counts["y"] == 1].groupby("group")["patients"].sum()
        known, label = membership.notna().to_numpy(), membership.astype(str).to_numpy()
        for group in order[role]:
            group = str(group)
            members = known & (label == group)
            entry = SubgroupMetrics(attribute=role, column=columns[role], group=group, rows=int(patients[group]),
                                    positives=int(positives.get(group, 0)))
            if entry.rows < options.min_group_rows:
                entry.note = f"fewer than {options.min_group_rows} patients: no metrics"
                rows.append(entry)
                continue
            entry.brier = float(brier_score_loss(y[members], p[members]))
            if entry.positives in (0, entry.rows):
                entry.note = "one outcome only: no ROC-AUC, sensitivity or specificity"
            else:
                entry.roc_auc = bootstrap_roc_auc(y[members], p[members], options.bootstrap)
                entry.sensitivity = float(rates.loc[group, "sensitivity"])
                entry.specificity = float(rates.loc[group, "specificity"])
            rows.append(entry)
    return rows


def fairness_checks(y_true: pd.Series, proba: np.ndarray, groups: Mapping[str, pd.Series], threshold: float,
                    subgroups: Sequence[SubgroupMetrics], options: ModelCardOptions) -> List[Fairness]:
    """fairlearn's equalized-odds difference per role (on the confusion counts, as in `subgroup_metrics`), over the
    groups that have metrics (enough patients, both outcomes), with a warning above
    `options.max_equalized_odds_difference`."""
    y = np.asarray(y_true).astype(int)
    flagged = (np.asarray(proba) >= threshold).astype(int)
    checks = []
    for role, membership in groups.items():
        compared = [g.group for g in subgroups if g.attribute == role and g.roc_auc is not None]
        check = Fairness(attribute=role, groups=compared, limit=options.max_equalized_odds_difference)
        if len(compared) >= 2:
            counts = _confusion_counts(y, flagged, membership)
            counts = counts[counts["group"].isin(compared)]
            check.equalized_odds_difference = float(equalized_odds_difference(
                counts["y"], counts["flagged"], sensitive_features=counts["group"],
                sample_weight=counts["patients"].to_numpy()))
            if check.equalized_odds_difference > check.limit:
                check.warning = (f"{role}: equalized-odds difference {check.equalized_odds_difference:.2f} across "
                                 f"{', '.join(compared)} exceeds {check.limit:g} at threshold {threshold:g}; compare "
                                 f"the groups' sensitivity and specificity before use")
        checks.append(check)
    return checks


def decision_curve(y_true: np.ndarray, proba: np.ndarray, thresholds: Sequence[float],
                   registered: float) -> List[NetBenefit]:
    """Net benefit (Vickers & Elkin 2006) of the model, treat-all and treat-none at each threshold probability.
    Three lines of arithmetic per threshold; a decision-curve package would bring statsmodels for them."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(proba, dtype=float)
    n, prevalence = len(y), float(y.mean())
    points = []
    for t in sorted({*thresholds, registered}):
        odds = t / (1 - t)
        flagged = p >= t
        true_positive, false_positive = (flagged & y).sum() / n, (flagged & ~y).sum() / n
        points.append(NetBenefit(threshold=float(t), model=float(true_positive - false_positive * odds),
                                 treat_all=prevalence - (1 - prevalence) * odds,
                                 registered=bool(np.isclose(t, registered))))
    return points


# ---------------------------------------------------------------------------------------------------------------
# Calibration


def calibration_summary(y_true: np.ndarray, proba: np.ndarray, brier: Estimate, bins: int,
                        method: str = "none") -> Calibration:
    y = np.asarray(y_true).astype(float)
    p = np.asarray(proba, dtype=float)
    frame = pd.DataFrame({"p": p, "y": y, "bin": pd.qcut(p, bins, labels=False, duplicates="drop")})
    table = frame.groupby("bin").agg(low=("p", "min"), high=("p", "max"), rows=("p", "size"),
                                     mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
    ece = float((table["rows"] * (table["observed_rate"] - table["mean_predicted"]).abs()).sum() / len(p))
    fit = calibration_fit(y, p)
    return Calibration(
        method=method, brier=brier, mean_predicted=float(p.mean()), observed_rate=float(y.mean()),
        expected_calibration_error=ece, slope=fit.slope, intercept=fit.intercept,
        bins=[CalibrationBin(**row) for row in table.to_dict("records")],
    )


# ---------------------------------------------------------------------------------------------------------------


def build_model_card(
    model: Pipeline,
    test_set: pd.DataFrame,
    dataset: DatasetSpec,
    data_version: DataVersion,
    evaluation: EvaluationReport,
    explanations: LimeExplanations,
    registered: RegisteredVersion,
    promotion: PromotionDecision,
    version_tags: Mapping[str, str],
    intended_use: IntendedUse,
    options: ModelCardOptions = ModelCardOptions(),
    shap: Optional[ShapExplanations] = None,
) -> ModelCard:
    """The card of `registered`, whose MLflow version carries `version_tags` (provenance written at registration).

    `model` is the trained pipeline behind the version; it is scored on `test_set`, the split the evaluation used.
    """
    X_test, y_test = features_and_target(test_set, dataset)
    proba = model.predict_proba(X_test)[:, 1]
    threshold = registered.decision_threshold
    sensitivity, specificity = sensitivity_specificity(y_test, proba, threshold)
    groups = subgroup_columns(dataset, options, X_test)
    order = {role: _group_order(dataset, options, role, [g for g in membership.dropna().unique()])
             for role, membership in groups.items()}
    subgroups = subgroup_metrics(y_test, proba, groups, dataset.subgroups, order, threshold, options)
    unknown = "unknown"
    provenance = Provenance(
        registered_model=registered.name, version=registered.version, model_uri=registered.model_uri,
        mlflow_run_id=registered.run_id, classifier=evaluation.model_name,
        estimator=type(base_classifier(model.named_steps["classifier"])).__name__,
        training_date=version_tags.get("training_date", unknown), git_commit=version_tags.get("git_commit", unknown),
        pipeline_run=version_tags.get("zenml_pipeline_run_name", unknown),
        pipeline_run_id=version_tags.get("zenml_pipeline_run_id", unknown),
        zenml_model=version_tags.get("zenml_model_name", unknown),
        zenml_model_version=version_tags.get("zenml_model_version", unknown),
        data=data_version, dataset_description=dataset.description, target=dataset.target.column,
        test_rows=evaluation.test_rows, test_positives=evaluation.test_positives,
    )
    return ModelCard(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        intended_use=intended_use,
        provenance=provenance,
        metrics=evaluation.metrics,
        confidence=evaluation.confidence,
        bootstrap_resamples=evaluation.bootstrap_resamples,
        fitting=evaluation.fitting,
        calibration=calibration_summary(y_test, proba, evaluation.metrics["brier"], options.calibration_bins,
                                        evaluation.calibration_method),
        threshold=DecisionThreshold(threshold=threshold, test_sensitivity=sensitivity, test_specificity=specificity,
                                    operating_points=evaluation.operating_points),
        subgroups=subgroups,
        fairness=fairness_checks(y_test, proba, groups, threshold, subgroups, options),
        decision_curve=decision_curve(y_test, proba, options.decision_curve, threshold),
        global_importance=explanations.global_importance[:options.top_features],
        explained_patients=len(explanations.patients),
        explainers=None if shap is None else Explainers(
            shap_method=shap.method, shap_importance=shap.global_importance[:options.top_features],
            agreement=shap.agreement, lime_stability=shap.lime_stability),
        promotion=promotion,
    )
