"""SHAP values of test patients in the raw clinical feature space, beside LIME, and how far the two agree.

Two explainers, both in units of P(positive):
- TreeSHAP (shap.TreeExplainer) when the classifier is a tree ensemble (XGBoost, random forest) and every column
  the feature transforms produce comes from exactly one raw column (scaled or clipped values, one-hot categories,
  missing indicators): a raw feature's value is the sum over its columns. For a calibrated ensemble the values
  explain the trees' probability before the calibration map (monotone: it keeps the order of patients and the
  direction of every effect). Its algorithm (`tree_algorithm: auto`): a random forest's trees average class
  fractions, so their own output is already P(positive) and the exact path-dependent algorithm explains it
  against the training rows each tree saw (their cover), about six times faster than interventional; XGBoost's
  trees add up log-odds, and only the interventional algorithm, against a seeded background sample of training
  rows, explains them in units of probability.
- Otherwise (logistic regression, the soft-voting ensemble, engineered features that mix columns) shap's
  permutation explainer on the whole pipeline, masking raw columns with background values; a missing measurement
  stays missing, as the model sees it.

Agreement with LIME is measured on the same patients: the Spearman rank correlation of the global importances
(mean |SHAP| against mean |LIME weight|, LIME's "<column> missing" features folded into their column) and the mean
overlap of each patient's three strongest features.
"""

from __future__ import annotations

import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List, Literal, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from heartml.core.calibration import base_classifier
from heartml.core.dataset import DatasetSpec
from heartml.core.explain import MISSING, LimeExplanations, LimeStability, RawEncoding, process_context

Method = Literal["auto", "tree", "permutation"]
TreeAlgorithm = Literal["auto", "interventional", "path_dependent"]
TREE_ENSEMBLES = (XGBClassifier, RandomForestClassifier)


class ShapOptions(BaseModel):
    method: Method = "auto"  # auto: TreeSHAP where it applies (see heartml/core/shapley.py), else permutation
    tree_algorithm: TreeAlgorithm = "auto"  # auto: path_dependent where the trees give P(positive) (forests)
    background_rows: int = Field(50, ge=10)  # seeded sample of training rows (interventional and permutation)
    # Permutation explainer: model calls per patient, each over the background rows. 150 gives ~6 permutations of
    # 11 features: within 0.003 (median) of 1000 calls against 100 rows, at a tenth of the time.
    max_evals: int = Field(150, ge=50)  # per patient, permutation explainer (x background rows)
    max_patients: Optional[int] = Field(200, ge=1)  # of the patients LIME explained, the first this many (null: all)
    top_features: int = Field(3, ge=1)  # per patient, for the overlap with LIME
    n_jobs: int = Field(2, ge=1)  # TreeSHAP worker processes, each given at least 250 patients
    seed: int = 42  # set once for the run: parameters.seed (the pipeline hands it to every step)


class PatientShap(BaseModel):
    patient: int  # row position in the test split (the patients LIME explained)
    probability: float  # the model's P(positive), as served
    output: float  # what the values explain: `probability`, or the trees' P(positive) before calibration
    base_value: float  # expected `output` over the background
    values: Dict[str, float]  # raw feature -> contribution; they sum to output - base_value


class ShapImportance(BaseModel):
    feature: str
    mean_abs_value: float
    mean_value: float


class Agreement(BaseModel):
    """SHAP against LIME on the same patients."""

    patients: int
    global_rank_correlation: float  # Spearman, global importances over the raw features
    top_overlap: float  # mean share of each patient's top features the two have in common (1 = same set)
    top_features: int


class ShapExplanations(BaseModel):
    """SHAP values of test patients and their global summary (`shap_explanations` artifact)."""

    model: str  # classifier class of the explained pipeline
    method: Literal["tree", "permutation"]
    why: str  # why this explainer (and, for trees, which algorithm)
    positive_class: str
    feature_names: List[str]  # raw model features
    background_rows: int  # the sample the values are taken against; path-dependent TreeSHAP: every training row
    tree_algorithm: Optional[Literal["interventional", "path_dependent"]] = None  # method tree only
    seed: int
    seconds: float
    patients: List[PatientShap]
    global_importance: List[ShapImportance]  # strongest first
    agreement: Optional[Agreement] = None
    lime_stability: Optional[LimeStability] = None  # LIME against itself under other seeds, for comparison

    @property
    def patients_per_second(self) -> float:
        return len(self.patients) / self.seconds if self.seconds else float("nan")

    def matrix(self) -> pd.DataFrame:
        """Patients x raw features."""
        return pd.DataFrame([p.values for p in self.patients], index=[p.patient for p in self.patients],
                            columns=self.feature_names)


# shap's numba functions that the permutation explainer compiles in every process (about 3 s) and that numba's
# cache can keep: shap declares them without `cache=True`. Not `_build_fixed_single_output`: it takes the link
# function as an argument, whose type differs per process, so its cache would miss and grow by a file per run.
_CACHEABLE_NUMBA = {"shap.maskers._tabular": ("_delta_masking", "_single_delta_mask"),
                    "shap.links": ("identity", "_identity_inverse", "logit", "_logit_inverse")}


def _shap() -> Any:
    """shap, imported when needed (numba makes it heavy), without its colormap deprecation warnings, and with the
    numba functions of _CACHEABLE_NUMBA compiled once per machine (beside their source, or in NUMBA_CACHE_DIR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher

    for module, names in _CACHEABLE_NUMBA.items():
        for name in names:
            function = getattr(sys.modules.get(module), name, None)
            if isinstance(function, Dispatcher) and isinstance(function._cache, NullCache):
                function.enable_caching()
    return shap


def raw_column_of(output_columns: Sequence[str], spec: DatasetSpec) -> Optional[Dict[str, str]]:
    """Transformed column -> the one raw column it comes from, or None if some column mixes several or none."""
    mapping: Dict[str, str] = {}
    for name in output_columns:
        owners = []
        for column in spec.model_features:
            categories = spec.features[column].categories or []
            if name in (column, f"missingindicator_{column}", f"{column}_outlier") or \
                    name in {f"{column}_{category}" for category in categories}:
                owners.append(column)
        if len(owners) != 1:
            return None
        mapping[name] = owners[0]
    return mapping


def choose_method(model: Pipeline, spec: DatasetSpec, requested: Method) -> tuple[str, str]:
    """("tree" | "permutation", why)."""
    classifier = base_classifier(model.named_steps["classifier"])
    if requested == "permutation":
        return "permutation", "configured"
    if not isinstance(classifier, TREE_ENSEMBLES):
        reason = f"{type(classifier).__name__} is not a tree ensemble: permutation explainer on the raw records"
        if requested == "tree":
            raise ValueError(f"shap.method tree: {reason}")
        return "permutation", reason
    if raw_column_of(model.named_steps["features"].get_feature_names_out(), spec) is None:
        reason = "engineered features combine raw columns: permutation explainer on the raw records"
        if requested == "tree":
            raise ValueError(f"shap.method tree: {reason}")
        return "permutation", reason
    why = f"TreeSHAP on the {type(classifier).__name__} trees, summed per raw column"
    if classifier is not model.named_steps["classifier"]:
        why += "; values explain the trees' probability before the calibration map"
    return "tree", why


def choose_tree_algorithm(trees: Any, requested: TreeAlgorithm) -> str:
    """"path_dependent" | "interventional": path-dependent only where the trees' own output is P(positive)."""
    outputs_probability = isinstance(trees, RandomForestClassifier)  # averaged class fractions; XGBoost: log-odds
    if requested == "path_dependent" and not outputs_probability:
        raise ValueError(f"shap.tree_algorithm path_dependent: {type(trees).__name__}'s trees add up log-odds, and "
                         "only the interventional algorithm explains them in units of probability")
    if requested == "auto":
        return "path_dependent" if outputs_probability else "interventional"
    return requested


# shap's C++ TreeSHAP holds the GIL, so patients go to worker processes, at least this many per worker (fewer would
# spend more on starting a worker than on their values).
MIN_PATIENTS_PER_WORKER = 250
_worker_explainer: Any = None


def _start_worker(explainer: Any) -> None:
    global _worker_explainer
    _worker_explainer = explainer


def _worker_values(matrix: np.ndarray) -> np.ndarray:
    return np.asarray(_worker_explainer.shap_values(matrix))


def tree_shap_values(explainer: Any, matrix: np.ndarray, n_jobs: int) -> np.ndarray:
    """`explainer.shap_values(matrix)`, the rows split over up to `n_jobs` worker processes (forked on Linux, with
    the explainer already built: see heartml.core.explain.process_context)."""
    workers = min(n_jobs, len(matrix) // MIN_PATIENTS_PER_WORKER)
    if workers <= 1:
        return np.asarray(explainer.shap_values(matrix))
    with ProcessPoolExecutor(workers, mp_context=process_context(), initializer=_start_worker,
                             initargs=(explainer,)) as pool:
        return np.concatenate(list(pool.map(_worker_values, np.array_split(matrix, workers))))


def _tree_values(model: Pipeline, spec: DatasetSpec, background: pd.DataFrame, patients: pd.DataFrame,
                 algorithm: str, n_jobs: int = 1) -> tuple[np.ndarray, float, np.ndarray]:
    shap = _shap()

    features = model.named_steps["features"]
    trees = base_classifier(model.named_steps["classifier"])
    names = list(features.get_feature_names_out())
    if algorithm == "path_dependent":  # against the training rows each tree saw (its nodes' cover)
        explainer = shap.TreeExplainer(trees, feature_perturbation="tree_path_dependent")
    else:
        explainer = shap.TreeExplainer(trees, np.asarray(features.transform(background), dtype=float),
                                       model_output="probability", feature_perturbation="interventional")
    frame = features.transform(patients)
    values = tree_shap_values(explainer, np.asarray(frame, dtype=float), n_jobs)
    if values.ndim == 3:  # (patients, columns, classes) for random forests
        values = values[:, :, 1]
    base = np.ravel(explainer.expected_value)
    owner = raw_column_of(names, spec)
    raw = np.zeros((len(patients), len(spec.model_features)))
    for k, name in enumerate(names):
        raw[:, spec.model_features.index(owner[name])] += values[:, k]
    return raw, float(base[-1]), trees.predict_proba(frame)[:, 1]


def _permutation_values(model: Pipeline, spec: DatasetSpec, background: pd.DataFrame, patients: pd.DataFrame,
                        options: ShapOptions) -> tuple[np.ndarray, float, np.ndarray]:
    shap = _shap()

    fitted = RawEncoding.fit(background, spec, patients)
    encoding = RawEncoding(columns=fitted.columns, categories=fitted.categories, medians=fitted.medians,
                           missing_flags=[])  # missing numeric values stay NaN in the matrix

    def predict(matrix: np.ndarray) -> np.ndarray:
        return model.predict_proba(encoding.decode(matrix))[:, 1]

    explainer = shap.explainers.Permutation(predict, shap.maskers.Independent(encoding.encode(background, False),
                                                                              max_samples=len(background)),
                                            seed=options.seed)
    result = explainer(encoding.encode(patients, False), max_evals=max(options.max_evals, 2 * len(spec.model_features)
                                                                       + 1), silent=True)
    return np.asarray(result.values), float(np.ravel(result.base_values)[0]), model.predict_proba(patients)[:, 1]


def shap_patients(model: Pipeline, X_train: pd.DataFrame, X_test: pd.DataFrame, positions: Sequence[int],
                  spec: DatasetSpec, options: ShapOptions) -> ShapExplanations:
    """SHAP values of the test patients at `positions` (LIME's), against a seeded sample of training rows (or,
    path-dependent, the trees' cover of them)."""
    method, why = choose_method(model, spec, options.method)
    algorithm = None
    if method == "tree":
        algorithm = choose_tree_algorithm(base_classifier(model.named_steps["classifier"]), options.tree_algorithm)
        why += f" ({algorithm.replace('_', '-')})"
    sampled = min(options.background_rows, len(X_train))
    background = X_train.sample(sampled, random_state=options.seed) if sampled < len(X_train) else X_train
    # What the values are taken against: the sample, or (path-dependent) the trees' cover of every training row.
    rows = len(X_train) if algorithm == "path_dependent" else sampled
    positions = list(positions)[:options.max_patients]
    patients = X_test.iloc[positions]
    started = time.perf_counter()
    if method == "tree":
        values, base, output = _tree_values(model, spec, background, patients, algorithm, options.n_jobs)
    else:
        values, base, output = _permutation_values(model, spec, background, patients, options)
    seconds = time.perf_counter() - started
    probability = model.predict_proba(patients)[:, 1]
    names = spec.model_features
    explained = [PatientShap(patient=int(position), probability=float(p), output=float(o), base_value=base,
                             values=dict(zip(names, map(float, row))))
                 for position, p, o, row in zip(positions, probability, output, values)]
    importance = sorted((ShapImportance(feature=f, mean_abs_value=float(np.abs(values[:, i]).mean()),
                                        mean_value=float(values[:, i].mean())) for i, f in enumerate(names)),
                        key=lambda item: item.mean_abs_value, reverse=True)
    return ShapExplanations(model=type(model.named_steps["classifier"]).__name__, method=method, why=why,
                            positive_class=spec.target.column, feature_names=names, background_rows=rows,
                            tree_algorithm=algorithm,
                            seed=options.seed, seconds=seconds, patients=explained, global_importance=importance)


def lime_by_raw_feature(explanations: LimeExplanations, features: Sequence[str]) -> pd.DataFrame:
    """|LIME weight| per patient and raw feature ("<column> missing" folded into its column; 0 if not in top)."""
    rows = {}
    for patient in explanations.patients:
        weights = dict.fromkeys(features, 0.0)
        for c in patient.contributions:
            column = c.feature[: -len(f" {MISSING}")] if c.feature.endswith(f" {MISSING}") else c.feature
            if column in weights:
                weights[column] += abs(c.weight)
        rows[patient.patient] = weights
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(features))


def top_set(values: pd.Series, k: int) -> set:
    nonzero = values[values > 0]
    return set(nonzero.sort_values(ascending=False, kind="stable").index[:k])


def compare_with_lime(shap: ShapExplanations, lime: LimeExplanations, k: int = 3) -> ShapExplanations:
    """`shap` with its agreement with `lime` and LIME's own stability across seeds."""
    return shap.model_copy(update={"agreement": agreement(shap, lime, k), "lime_stability": lime.stability})


def agreement(shap: ShapExplanations, lime: LimeExplanations, k: int = 3) -> Agreement:
    """How far SHAP and LIME agree on the patients both explained."""
    shap_abs = shap.matrix().abs()
    lime_abs = lime_by_raw_feature(lime, shap.feature_names)
    common = shap_abs.index.intersection(lime_abs.index)
    shap_abs, lime_abs = shap_abs.loc[common], lime_abs.loc[common]
    correlation = spearmanr(shap_abs.mean(), lime_abs.mean()).statistic
    overlaps = [len(top_set(shap_abs.loc[p], k) & top_set(lime_abs.loc[p], k)) / k for p in common]
    return Agreement(patients=len(common), global_rank_correlation=float(np.nan_to_num(correlation)),
                     top_overlap=float(np.mean(overlaps)) if overlaps else float("nan"), top_features=k)
