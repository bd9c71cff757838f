"""Feature engineering around the preprocessing transforms, as one unfitted sklearn Pipeline:

    age bands -> grouped aggregates -> preprocessing -> polynomial features -> feature selection -> PCA

Every step is optional (configs/training.yaml, `feature_engineering.parameters.features`) and fitted on training
rows only; model building clones the pipeline and refits it inside every CV fold.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, List, Literal, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest, f_classif, mutual_info_classif
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures

from heartml.core.dataset import DatasetSpec
from heartml.core.errors import ConfigError
from heartml.core.preprocessing import outlier_report
from heartml.core.transforms import AgeBands, GroupRelative

AGE_BAND = "age_band"


class AgeBandOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # add an age_band column (categorical)
    column: str = "age"  # a subgroup role of the dataset description, or a column name
    edges: Optional[List[float]] = None  # cut points; null: quantiles of the training rows
    bands: int = Field(default=4, ge=2)  # used when edges is null


class GroupRelativeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # add <column>_vs_<groups>: a value relative to its group's statistic
    columns: Optional[List[str]] = None  # null: every numeric feature that is not a grouping column
    by: List[str] = Field(default_factory=lambda: [AGE_BAND, "sex"])  # roles, columns, or age_band
    statistic: Literal["mean", "median"] = "mean"  # of each group, on training rows
    mode: Literal["difference", "ratio"] = "difference"  # value - statistic, or value / statistic
    min_group_size: int = Field(default=5, ge=1)  # smaller groups use the overall statistic


class PolynomialOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # polynomial / interaction features after the preprocessing
    degree: int = Field(default=2, ge=2, le=3)  # highest power of a product
    interaction_only: bool = True  # products of different columns only, no squares


class SelectionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["none", "kbest"] = "none"  # keep the k best-scoring features (SelectKBest)
    k: int = Field(default=15, ge=1)  # features kept
    score: Literal["f_classif", "mutual_info"] = "f_classif"  # how features are scored against the target


class FeatureOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age_bands: AgeBandOptions = AgeBandOptions()  # age (or another numeric role) in bands
    group_relative: GroupRelativeOptions = GroupRelativeOptions()  # grouped aggregates
    polynomial: PolynomialOptions = PolynomialOptions()  # interaction features
    selection: SelectionOptions = SelectionOptions()  # feature selection
    pca_components: Optional[int] = Field(default=None, ge=1)  # PCA to this many components (null: none)
    seed: int = 42  # set once for the run: parameters.seed (the pipeline hands it to every step)


def _group_columns(options: FeatureOptions, spec: DatasetSpec) -> List[str]:
    return [AGE_BAND if b == AGE_BAND else spec.resolve_column(b) for b in options.group_relative.by]


def _relative_columns(options: FeatureOptions, spec: DatasetSpec) -> List[str]:
    if options.group_relative.columns is not None:
        return [spec.resolve_column(c) for c in options.group_relative.columns]
    skip = set(_group_columns(options, spec))
    if options.age_bands.enabled:
        skip.add(spec.resolve_column(options.age_bands.column))
    return [c for c in spec.columns_of_kind("numeric") if c not in skip]


def check_feature_options(options: FeatureOptions, spec: DatasetSpec, where: str = "features") -> None:
    """Columns named by the options exist in this dataset with a fitting kind; raises ConfigError otherwise."""
    problems = []
    features = spec.model_features
    if options.age_bands.enabled:
        column = spec.resolve_column(options.age_bands.column)
        if column not in features or spec.features[column].kind != "numeric":
            problems.append(f"{where}.age_bands.column: {options.age_bands.column!r} is not a numeric feature "
                            f"of dataset '{spec.name}'")
    if options.group_relative.enabled:
        for given, column in zip(options.group_relative.by, _group_columns(options, spec)):
            if column == AGE_BAND:
                if not options.age_bands.enabled:
                    problems.append(f"{where}.group_relative.by: '{AGE_BAND}' needs age_bands.enabled: true")
            elif column not in features or spec.features[column].kind == "numeric":
                problems.append(f"{where}.group_relative.by: {given!r} is not a categorical or binary feature "
                                f"of dataset '{spec.name}'")
        for column in _relative_columns(options, spec):
            if column not in features or spec.features[column].kind != "numeric":
                problems.append(f"{where}.group_relative.columns: {column!r} is not a numeric feature "
                                f"of dataset '{spec.name}'")
        if not _relative_columns(options, spec):
            problems.append(f"{where}.group_relative.columns: no numeric feature left to compare within groups")
    if problems:
        raise ConfigError(problems)


def build_feature_pipeline(preprocessor: ColumnTransformer, options: FeatureOptions,
                           spec: Optional[DatasetSpec] = None) -> Pipeline:
    """The whole transform chain, unfitted, so CV can refit it inside each fold. `spec` resolves column roles
    (needed only when age bands or grouped aggregates are on)."""
    steps = []
    if options.age_bands.enabled or options.group_relative.enabled:
        if spec is None:
            raise ValueError("age bands and grouped aggregates need the dataset description")
        check_feature_options(options, spec)
    if options.age_bands.enabled:
        bands = options.age_bands
        steps.append(("age_bands", AgeBands(spec.resolve_column(bands.column), bands.edges, bands.bands, AGE_BAND)))
    if options.group_relative.enabled:
        group = options.group_relative
        steps.append(("group_relative", GroupRelative(_relative_columns(options, spec), _group_columns(options, spec),
                                                      group.statistic, group.mode, group.min_group_size)))
    steps.append(("preprocess", clone(preprocessor)))
    if options.polynomial.enabled:
        poly = options.polynomial
        steps.append(("polynomial", PolynomialFeatures(degree=poly.degree, interaction_only=poly.interaction_only,
                                                       include_bias=False)))
    if options.selection.method == "kbest":
        score = f_classif if options.selection.score == "f_classif" else partial(mutual_info_classif,
                                                                                 random_state=options.seed)
        steps.append(("select", SelectKBest(score, k=options.selection.k)))
    if options.pca_components:
        steps.append(("pca", PCA(n_components=options.pca_components, random_state=options.seed)))
    return Pipeline(steps).set_output(transform="pandas")


def describe_feature_pipeline(fitted: Pipeline) -> Dict[str, Any]:
    """What the fitted pipeline learned, as artifact metadata: steps, output columns, bands, groups, selection."""
    names = [str(n) for n in fitted.get_feature_names_out()]
    info: Dict[str, Any] = {"steps": [name for name, _ in fitted.steps], "feature_count": len(names),
                            "feature_names": names}
    steps = fitted.named_steps
    if "age_bands" in steps:
        info["age_bands"] = {"column": steps["age_bands"].column, "cuts": [float(c) for c in steps["age_bands"].cuts_],
                             "labels": list(steps["age_bands"].labels_)}
    if "group_relative" in steps:
        relative = steps["group_relative"]
        info["group_relative"] = {"columns": list(relative.columns), "by": list(relative.by),
                                  "groups_fitted": {c: int(len(s)) for c, s in relative.group_stats_.items()}}
    if "select" in steps:
        before = steps["select"].feature_names_in_
        info["selected_features"] = [str(n) for n in before[steps["select"].get_support()]]
    if "pca" in steps:
        info["pca_explained_variance"] = float(steps["pca"].explained_variance_ratio_.sum())
    return info


def outliers_seen(fitted: Pipeline, X: pd.DataFrame) -> Dict[str, Any]:
    """Values of the raw records `X` outside the outlier bounds the fitted pipeline learned (empty when off)."""
    position = [name for name, _ in fitted.steps].index("preprocess")
    before = fitted[:position].transform(X) if position else X  # engineered columns are screened too
    return outlier_report(fitted.named_steps["preprocess"], {"train_set": before})
