"""Dataset descriptions (configs/datasets/*.yaml): target, feature types, ranges, missing markers.

Everything the pipeline knows about a dataset's schema comes from one of these files, so switching to another
heart dataset with another schema needs only a new description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from heartml.core.config_files import load_yaml_model
from heartml.core.errors import ConfigError

FeatureKind = Literal["numeric", "categorical", "binary"]


def category_text(values: pd.Series) -> pd.Series:
    """Categories compared as text; integral numbers without '.0' so `1.0` read from a float column matches `1`."""
    present = values.notna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numeric = values.astype("float64")
        integral = present & (numeric == np.floor(numeric))
        text = pd.Series(np.nan, index=values.index, dtype="object")
        text[integral] = numeric[integral].astype("int64").astype(str)
        fractional = present & ~integral
        text[fractional] = numeric[fractional].astype(str)
        return text
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):  # the usual case, vectorized
        return values.astype("object").where(present, np.nan)

    def text_of(value: Any) -> Any:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return values.map(text_of, na_action="ignore").astype("object")


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FeatureKind
    min: Optional[float] = None
    max: Optional[float] = None
    categories: Optional[List[str]] = None
    # Values that mean "not measured" in this column (e.g. Cholesterol == 0); they become NaN before anything else.
    missing_values: List[Any] = Field(default_factory=list)
    description: str = ""

    @field_validator("categories", mode="before")
    @classmethod
    def _categories_as_text(cls, value: Any) -> Any:
        if value is None:
            return None
        return [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in value]

    def missing_mask(self, values: pd.Series) -> pd.Series:
        """Rows holding one of this column's "not measured" markers (matched as given and as numbers)."""
        if not self.missing_values:
            return pd.Series(False, index=values.index)
        mask = values.isin(self.missing_values)
        numeric_markers = [v for v in self.missing_values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numeric_markers and values.dtype == object:
            mask |= pd.to_numeric(values, errors="coerce").isin(numeric_markers)
        return mask


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    positive: Any = 1
    negative: Any = 0

    @property
    def labels(self) -> List[Any]:
        return [self.negative, self.positive]


class AcceptanceLimits(BaseModel):
    """The over/underfitting check's limits for this dataset, in units of model building's `scoring` (ROC-AUC by
    default). They belong to the data: what a sound model reaches on 918 pooled patients is not what it reaches on
    299, so the dataset description carries them and switching datasets needs no other change."""

    model_config = ConfigDict(extra="forbid")

    max_train_cv_gap: float = 0.10  # training score above CV by more: overfitting
    max_cv_test_gap: float = 0.06  # CV above test by more: overfitting to the training split / optimistic CV
    min_score: float = 0.85  # train, CV or test below this: underfitting (too weak to use)


class DatasetSpec(BaseModel):
    """Everything the pipeline needs to know about one tabular heart dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    default_source: str
    target: TargetSpec
    features: Dict[str, FeatureSpec]
    # Columns described (so they are validated if present) but never given to the model, e.g. leaking ones.
    exclude: List[str] = Field(default_factory=list)
    min_rows: int = Field(default=50, ge=1)
    min_minority_share: float = Field(default=0.05, ge=0.0, lt=0.5)
    # pandas.read_csv options for this dataset's files (e.g. thousands=",").
    read_options: Dict[str, Any] = Field(default_factory=dict)
    # Named columns used for subgroup metrics and grouped features: role -> column (e.g. sex: Sex, age: Age).
    subgroups: Dict[str, str] = Field(default_factory=dict)
    # The quality gate's limits for models of this dataset (the defaults suit a few hundred rows and more).
    acceptance: AcceptanceLimits = Field(default_factory=AcceptanceLimits)
    # Step parameters this dataset needs whatever the run configuration says, merged over it key by key, e.g.
    # {model_building: {modeling: {tuning: null}}} for a dataset too small to tune on. step -> parameter -> values.
    step_parameters: Dict[str, Dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "DatasetSpec":
        for name, feature in self.features.items():
            if feature.kind == "categorical" and not feature.categories:
                raise ValueError(f"feature {name!r} is categorical but lists no categories")
            if feature.min is not None and feature.max is not None and feature.min > feature.max:
                raise ValueError(f"feature {name!r}: min {feature.min} is above max {feature.max}")
        if self.target.column in self.features:
            raise ValueError(f"target column {self.target.column!r} is also listed as a feature")
        if self.target.positive == self.target.negative:
            raise ValueError("target.positive and target.negative must differ")
        if not self.model_features:
            raise ValueError("every feature is excluded; the model would have no input")
        for role, column in self.subgroups.items():
            if column not in self.model_features:
                raise ValueError(f"subgroups.{role}: {column!r} is not a (non-excluded) feature")
        return self

    @property
    def model_features(self) -> List[str]:
        """Feature columns the model sees, in config order (excluded columns dropped)."""
        return [c for c in self.features if c not in self.exclude]

    @property
    def required_columns(self) -> List[str]:
        return self.model_features + [self.target.column]

    def columns_of_kind(self, *kinds: str) -> List[str]:
        return [c for c in self.model_features if self.features[c].kind in kinds]

    def step_options(self, step: str, name: str, options: Options) -> Options:
        """`options` (a step parameter) with this dataset's `step_parameters[step][name]` merged over it."""
        override = self.step_parameters.get(step, {}).get(name, _ABSENT)
        if override is _ABSENT:
            return options
        merged = _merge(options.model_dump(), override) if isinstance(override, dict) else override
        try:
            return type(options).model_validate(merged)
        except ValidationError as exc:
            raise ConfigError([f"dataset {self.name!r}: step_parameters.{step}.{name}."
                               f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                               for error in exc.errors()]) from None

    def resolve_column(self, name: str) -> str:
        """A subgroup role (e.g. 'sex') or a column name, as the column name."""
        return self.subgroups.get(name, name)


_ABSENT = object()
Options = TypeVar("Options", bound=BaseModel)


def _merge(base: Any, override: Any) -> Any:
    """`override` over `base`, nested dicts merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}
    return override


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a dataset description file; problems become one line each."""
    return load_yaml_model(Path(path), DatasetSpec, "dataset description")
