"""LIME explanations of individual predictions over the raw clinical features, in parallel and batched.

LIME perturbs a numeric matrix, so the raw records are encoded for it: categorical (and binary) columns become
category codes that LIME declares categorical, and a numeric column with missing values gets a companion
"<column> missing" category, because the model treats "not measured" as information of its own. The prediction
function decodes LIME's samples back into raw records and calls the whole model pipeline on them.

Speed: patients are split over worker processes, and within a worker the model is called once per batch of
patients rather than once per patient, under scikit-learn's `assume_finite` and `skip_parameter_validation` (LIME's
two ridge fits, its score and distances, and the model's transforms re-checked their inputs for every patient:
~1 ms of each ~25 ms explanation).
The explainer counts the training values with numpy (`_NumpyCounts`). Each patient's neighbourhood is drawn from
its own seed, so the result is the same for any number of workers or batch size, and equal to a plain
`explain_instance` loop over LIME's own explainer that reseeds it the same way.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
import types
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import sklearn
from lime import lime_tabular
from lime.lime_tabular import LimeTabularExplainer
from pydantic import BaseModel, Field
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from heartml.core.dataset import DatasetSpec
from heartml.core.progress import progress_bar

MISSING = "missing"


class ExplainOptions(BaseModel):
    patients: Optional[List[int]] = None  # row positions in the test split; null: every test patient, up to:
    # With `patients: null`, a larger test split is explained on a seeded random sample of this many patients
    # (null: no cap). LIME's cost grows with the patients explained, not with the rows trained on.
    max_patients: Optional[int] = Field(500, ge=1)  # larger test splits: a seeded sample (null: all)
    num_features: int = Field(10, ge=1)  # conditions per explanation
    num_samples: int = Field(5000, ge=100)  # LIME's perturbed samples per patient
    seed: int = 42  # set once for the run: parameters.seed (the pipeline hands it to every step)
    n_jobs: int = Field(2, ge=1)  # worker processes
    batch_size: int = Field(16, ge=1)  # patients per model call inside a worker
    # LIME's own stability: this many patients explained again with each of `stability_seeds` other seeds.
    stability_patients: int = Field(20, ge=0)  # 0: not measured
    stability_seeds: int = Field(2, ge=1)  # other seeds per patient


class RawEncoding(BaseModel):
    """Raw record columns <-> the numeric matrix LIME works on."""

    columns: List[str]  # raw columns, model input order
    categories: Dict[str, List[Any]]  # categorical/binary column -> its values (codes are positions)
    medians: Dict[str, float]  # numeric column -> training median, LIME's value when the record has none
    missing_flags: List[str]  # numeric columns that get a "<column> missing" companion feature

    @classmethod
    def fit(cls, X_train: pd.DataFrame, spec: DatasetSpec, X_explained: Optional[pd.DataFrame] = None) -> "RawEncoding":
        seen = pd.concat([X_train, X_explained]) if X_explained is not None else X_train
        categories: Dict[str, List[Any]] = {}
        for column in spec.columns_of_kind("categorical", "binary"):
            values = list(spec.features[column].categories or [0.0, 1.0])
            values += sorted({v for v in seen[column].dropna().unique()} - set(values), key=str)
            if seen[column].isna().any():
                values.append(MISSING)
            categories[column] = values
        numeric = [c for c in X_train.columns if c not in categories]
        return cls(
            columns=list(X_train.columns),
            categories=categories,
            medians={c: float(X_train[c].median()) for c in numeric},
            missing_flags=[c for c in numeric if seen[c].isna().any()],
        )

    @property
    def feature_names(self) -> List[str]:
        return self.columns + [f"{c} {MISSING}" for c in self.missing_flags]

    @property
    def categorical_indices(self) -> List[int]:
        flags = range(len(self.columns), len(self.columns) + len(self.missing_flags))
        return [i for i, c in enumerate(self.columns) if c in self.categories] + list(flags)

    @property
    def categorical_names(self) -> Dict[int, List[str]]:
        names = {i: [f"{v:g}" if isinstance(v, float) else str(v) for v in self.categories[c]]
                 for i, c in enumerate(self.columns) if c in self.categories}
        names.update({len(self.columns) + k: ["no", "yes"] for k in range(len(self.missing_flags))})
        return names

    def encode(self, X: pd.DataFrame, fill_missing: bool = True) -> np.ndarray:
        """The numeric matrix; `fill_missing=False` keeps missing numeric values as NaN (SHAP's masking)."""
        parts = []
        for column in self.columns:
            values = X[column]
            if column in self.categories:
                codes = {v: i for i, v in enumerate(self.categories[column])}
                # A dict lookup per value in pandas' hash table; missing values are not keys and come back NaN.
                coded = values.map(codes)
                if MISSING in codes:
                    coded = coded.fillna(codes[MISSING])
                parts.append(coded.to_numpy(float))
            else:
                parts.append((values.fillna(self.medians[column]) if fill_missing else values).to_numpy(float))
        parts += [X[c].isna().to_numpy(float) for c in self.missing_flags]
        return np.column_stack(parts)

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        frame = {}
        for i, column in enumerate(self.columns):
            if column in self.categories:
                known = [v for v in self.categories[column] if v != MISSING]
                dtype = float if all(isinstance(v, float) for v in known) else object
                lookup = np.array([np.nan if v == MISSING else v for v in self.categories[column]], dtype=dtype)
                frame[column] = lookup[matrix[:, i].astype(int)]
            else:
                frame[column] = matrix[:, i].astype(float)
        for k, column in enumerate(self.missing_flags):
            frame[column] = np.where(matrix[:, len(self.columns) + k] == 1, np.nan, frame[column])
        return pd.DataFrame(frame, columns=self.columns)


class Contribution(BaseModel):
    feature: str  # a raw column, or "<column> missing"
    condition: str  # LIME's reading of this patient's value, e.g. "ST_Slope=Flat" or "Oldpeak > 1.50"
    weight: float  # effect on P(positive) in the local linear model


class PatientExplanation(BaseModel):
    patient: int  # row position in the test split
    record: Dict[str, Any]  # the raw values explained
    probability: float  # the model's P(positive)
    label: Optional[int] = None  # the true label, when known
    intercept: float
    local_prediction: float  # the local linear model's P(positive) at this patient
    local_r2: float  # fit of the local model on the weighted neighbourhood
    contributions: List[Contribution]  # strongest first


class FeatureImportance(BaseModel):
    feature: str
    mean_abs_weight: float  # over all explained patients (0 where the feature was not among the top features)
    mean_weight: float
    patients_in_top: int


class LimeStability(BaseModel):
    """The same patients explained again with other seeds: how much of an explanation is LIME's sampling."""

    seeds: List[int]
    patients: int
    top_overlap: float  # mean share of the top-3 features found again with another seed (1 = always the same)
    rank_correlation: float  # mean Spearman correlation of |weights| over the features either run named


class LimeExplanations(BaseModel):
    """LIME explanations of test patients plus their global summary (`lime_explanations` artifact)."""

    model: str  # classifier class of the explained pipeline
    positive_class: str
    feature_names: List[str]
    categorical_features: List[str]
    num_samples: int
    num_features: int
    seed: int
    n_jobs: int
    seconds: float  # wall time of every explanation, the stability reruns included
    patients: List[PatientExplanation]
    global_importance: List[FeatureImportance]  # strongest first
    stability: Optional[LimeStability] = None

    @property
    def stability_reruns(self) -> int:
        """Explanations made again under other seeds to measure LIME's stability."""
        return self.stability.patients * len(self.stability.seeds) if self.stability else 0

    @property
    def explanations_made(self) -> int:
        """The patients' explanations plus the stability reruns."""
        return len(self.patients) + self.stability_reruns

    @property
    def patients_per_second(self) -> float:
        """Explanations (one patient each, the stability reruns included) per second of `seconds`."""
        return self.explanations_made / self.seconds if self.seconds else float("nan")

    def patient(self, position: int) -> PatientExplanation:
        found = next((p for p in self.patients if p.patient == position), None)
        if found is None:
            raise KeyError(f"test patient {position} was not explained")
        return found


class BatchedLimeExplainer(LimeTabularExplainer):
    """LimeTabularExplainer whose model calls cover a batch of patients at once.

    LIME draws one patient's neighbourhood and calls the model on it. Here the neighbourhoods of a batch are drawn
    first, predicted in one call, and each is handed back to LIME's own `explain_instance` through the private
    sampling hook, so everything after sampling (distances, kernel, feature selection, ridge fit) is LIME's code.
    """

    _drawn: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def _LimeTabularExplainer__data_inverse(self, data_row: np.ndarray, num_samples: int):  # noqa: N802
        if self._drawn is not None:
            drawn, self._drawn = self._drawn, None
            return drawn
        return LimeTabularExplainer._LimeTabularExplainer__data_inverse(self, data_row, num_samples)

    def draw(self, data_row: np.ndarray, num_samples: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
        # Reseeding in place reseeds the discretizer too: both hold this same RandomState.
        self.random_state.seed(seed)
        return LimeTabularExplainer._LimeTabularExplainer__data_inverse(self, data_row, num_samples)

    def explain_batch(self, rows: np.ndarray, seeds: Sequence[int], predict_proba: Callable[[np.ndarray], np.ndarray],
                      num_features: int, num_samples: int) -> list:
        # The samples are finite by construction (missing values are NaN, which the imputers accept either way) and
        # the parameters are LIME's and the fitted model's own: checking them again per patient only costs time.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            drawn = [self.draw(row, num_samples, seed) for row, seed in zip(rows, seeds)]
            proba = predict_proba(np.vstack([inverse for _, inverse in drawn]))
            explanations = []
            for k, (row, neighbourhood) in enumerate(zip(rows, drawn)):
                self._drawn = neighbourhood
                own = proba[k * num_samples:(k + 1) * num_samples]
                explanations.append(self.explain_instance(row, lambda _, own=own: own, labels=(1,),
                                                          num_features=num_features, num_samples=num_samples))
        return explanations


class _NumpyCounts(dict):
    """What `collections.Counter(column)` gives for a numeric column without NaN (sorted values -> counts), counted
    by numpy: LIME's explainer counts every training column value by value in Python (800k rows: 1.2 s of its
    1.8 s), once per worker."""

    def __init__(self, column: np.ndarray):
        values, counts = np.unique(column, return_counts=True)
        super().__init__(zip(values, counts.tolist()))


def make_explainer(encoding: RawEncoding, training: np.ndarray, class_names: Sequence[str],
                   seed: int) -> BatchedLimeExplainer:
    """LIME's tabular explainer over the encoded training rows (quartile discretizer), the same as LIME builds it."""
    arguments = dict(mode="classification", feature_names=encoding.feature_names,
                     categorical_features=encoding.categorical_indices, categorical_names=encoding.categorical_names,
                     class_names=list(class_names), discretize_continuous=True, random_state=seed)
    if np.isnan(training).any():  # Counter keeps each NaN apart, np.unique does not: LIME counts
        return BatchedLimeExplainer(training, **arguments)
    counting = lime_tabular.collections
    lime_tabular.collections = types.SimpleNamespace(Counter=_NumpyCounts)  # its only use of `collections`
    try:
        return BatchedLimeExplainer(training, **arguments)
    finally:
        lime_tabular.collections = counting


def patient_seed(seed: int, position: int) -> int:
    return seed * 1_000_003 + position


def model_predict_proba(model: Pipeline, encoding: RawEncoding) -> Callable[[np.ndarray], np.ndarray]:
    """LIME's samples (encoded) -> raw records -> the whole model pipeline."""
    return lambda matrix: model.predict_proba(encoding.decode(matrix))


class _PatientExplainer:
    """One explainer plus the model's prediction function; one per worker process."""

    def __init__(self, model: Pipeline, encoding: RawEncoding, training: np.ndarray, class_names: Sequence[str],
                 options: ExplainOptions):
        self.explainer = make_explainer(encoding, training, class_names, options.seed)
        self.predict = model_predict_proba(model, encoding)
        self.feature_names = encoding.feature_names
        self.options = options

    def explain(self, rows: np.ndarray, seeds: Sequence[int]) -> List[Dict[str, Any]]:
        """One explanation per row, each from its own neighbourhood seed (`patient_seed`)."""
        explanations = self.explainer.explain_batch(rows, seeds, self.predict, self.options.num_features,
                                                    self.options.num_samples)
        return [_summarize(exp, self.feature_names) for exp in explanations]


_worker: Optional[_PatientExplainer] = None


def _start_worker(*args: Any) -> None:
    global _worker
    # Both cores are used by processes; threads inside each would only compete. No output from workers.
    threadpool_limits(1)
    warnings.simplefilter("ignore")
    _worker = _PatientExplainer(*args)


def _explain_in_worker(rows: np.ndarray, seeds: Sequence[int]) -> List[Dict[str, Any]]:
    return _worker.explain(rows, seeds)


def process_context() -> multiprocessing.context.BaseContext:
    """fork on Linux: a worker starts in milliseconds with the model and libraries already loaded, where a fresh
    interpreter spends 1-4 s importing pandas/sklearn/xgboost/lime, longer than explaining the whole test split.
    The workers only compute (no logging, no I/O, OpenMP/BLAS capped to one thread) and leave via os._exit, which
    is what makes forking a threaded parent safe here. Elsewhere: spawn."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _explain_all(model: Pipeline, encoding: RawEncoding, training: np.ndarray, rows: np.ndarray,
                 seeds: Sequence[int], class_names: Sequence[str], options: ExplainOptions,
                 workers: int) -> List[Dict[str, Any]]:
    """An explanation of each row from its seed, in batches spread over `workers` processes, in row order."""
    batches = [slice(start, start + options.batch_size) for start in range(0, len(rows), options.batch_size)]
    args = (model, encoding, training, class_names, options)
    summaries: List[Dict[str, Any]] = []
    with ExitStack() as stack, progress_bar(len(rows), "LIME", unit="explanation") as bar:
        if workers == 1:
            explainer = _PatientExplainer(*args)
            done: Iterable[List[Dict[str, Any]]] = (explainer.explain(rows[b], seeds[b]) for b in batches)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=process_context(),
                                                           initializer=_start_worker, initargs=args))
            done = pool.map(_explain_in_worker, [rows[b] for b in batches], [seeds[b] for b in batches])
        for batch in done:
            summaries += batch
            bar.update(len(batch))
    return summaries


def _summarize(exp: Any, feature_names: Sequence[str]) -> Dict[str, Any]:
    """What we keep of a lime Explanation (plain values, so it travels back from workers cheaply)."""
    weights = exp.as_map()[1]
    conditions = exp.as_list(label=1)
    return {
        "probability": float(exp.predict_proba[1]),
        "intercept": float(exp.intercept[1]),
        "local_prediction": float(np.ravel(exp.local_pred)[0]),
        "local_r2": float(exp.score),
        "contributions": [Contribution(feature=feature_names[i], condition=condition, weight=float(w))
                          for (i, w), (condition, _) in zip(weights, conditions)],
    }


def patient_positions(rows: int, options: ExplainOptions) -> List[int]:
    """The test-split positions to explain: the configured ones, else all, else a seeded sample (ascending)."""
    if options.patients is not None:
        out_of_range = [p for p in options.patients if not 0 <= p < rows]
        if out_of_range:
            raise ValueError(f"explain.patients: positions {out_of_range} are outside the test split "
                             f"(0..{rows - 1})")
        return list(options.patients)
    if options.max_patients is None or rows <= options.max_patients:
        return list(range(rows))
    return sorted(np.random.default_rng(options.seed).choice(rows, options.max_patients, replace=False).tolist())


def explain_patients(
    model: Pipeline,
    X_train: pd.DataFrame,
    X_explain: pd.DataFrame,
    spec: DatasetSpec,
    options: ExplainOptions,
    y_explain: Optional[pd.Series] = None,
) -> LimeExplanations:
    """Explain the configured test patients (all by default, up to `max_patients`) and summarize the weights."""
    positions = patient_positions(len(X_explain), options)
    selected = X_explain.iloc[positions]
    encoding = RawEncoding.fit(X_train, spec, selected)
    training, rows = encoding.encode(X_train), encoding.encode(selected)
    class_names = [f"no {spec.target.column}", spec.target.column]

    # LIME's own stability: the first patients again under other seeds, in the same worker pool.
    again = min(options.stability_patients, len(positions))
    other_seeds = [options.seed + k for k in range(1, options.stability_seeds + 1)] if again else []
    all_rows = np.vstack([rows, *[rows[:again]] * len(other_seeds)])
    all_seeds = [patient_seed(options.seed, p) for p in positions] + \
        [patient_seed(seed, p) for seed in other_seeds for p in positions[:again]]
    started = time.perf_counter()
    workers = max(1, min(options.n_jobs, -(-len(all_rows) // options.batch_size)))
    summaries = _explain_all(model, encoding, training, all_rows, all_seeds, class_names, options, workers)
    seconds = time.perf_counter() - started
    summaries, rest = summaries[:len(positions)], summaries[len(positions):]
    stability = None
    if other_seeds:
        reruns = [rest[k * again:(k + 1) * again] for k in range(len(other_seeds))]
        stability = lime_stability(summaries[:again], reruns, other_seeds)

    patients = []
    for position, summary in zip(positions, summaries):
        record = {k: (None if pd.isna(v) else v) for k, v in X_explain.iloc[position].items()}
        label = None if y_explain is None else int(y_explain.iloc[position])
        patients.append(PatientExplanation(patient=position, record=record, label=label, **summary))
    return LimeExplanations(
        model=type(model.named_steps["classifier"]).__name__,
        positive_class=class_names[1],
        feature_names=encoding.feature_names,
        categorical_features=[encoding.feature_names[i] for i in encoding.categorical_indices],
        num_samples=options.num_samples,
        num_features=options.num_features,
        seed=options.seed,
        n_jobs=workers,
        seconds=seconds,
        patients=patients,
        global_importance=global_importance(patients, encoding.feature_names),
        stability=stability,
    )


def _top(summary: Dict[str, Any], k: int = 3) -> List[str]:
    return [c.feature for c in summary["contributions"][:k]]  # strongest first


def lime_stability(first: Sequence[Dict[str, Any]], reruns: Sequence[Sequence[Dict[str, Any]]],
                   seeds: List[int]) -> LimeStability:
    """Top-3 overlap and rank correlation of each patient's explanation with its reruns under other seeds."""
    from scipy.stats import spearmanr

    overlaps, correlations = [], []
    for rerun in reruns:
        for a, b in zip(first, rerun):
            overlaps.append(len(set(_top(a)) & set(_top(b))) / 3)
            weights_a = {c.feature: abs(c.weight) for c in a["contributions"]}
            weights_b = {c.feature: abs(c.weight) for c in b["contributions"]}
            named = sorted(set(weights_a) | set(weights_b))
            if len(named) > 1:
                correlations.append(spearmanr([weights_a.get(f, 0.0) for f in named],
                                              [weights_b.get(f, 0.0) for f in named]).statistic)
    return LimeStability(seeds=seeds, patients=len(first), top_overlap=float(np.mean(overlaps)),
                         rank_correlation=float(np.nanmean(correlations)) if correlations else float("nan"))


def global_importance(patients: Sequence[PatientExplanation], feature_names: Sequence[str]) -> List[FeatureImportance]:
    """Mean |weight| per feature over patients; a feature outside a patient's top features counts as 0 there."""
    weights = pd.DataFrame(
        [{c.feature: c.weight for c in p.contributions} for p in patients], columns=list(feature_names)
    ).astype(float)
    summary = [
        FeatureImportance(feature=f, mean_abs_weight=float(weights[f].abs().fillna(0).mean()),
                          mean_weight=float(weights[f].fillna(0).mean()), patients_in_top=int(weights[f].notna().sum()))
        for f in feature_names
    ]
    return sorted(summary, key=lambda item: item.mean_abs_weight, reverse=True)
