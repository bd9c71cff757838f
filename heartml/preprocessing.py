"""Cleaning (row-wise, nothing fitted), the stratified split, and the fitted preprocessing transforms.

Anything with state (imputation medians, encoder categories, scaler moments) lives in a sklearn
ColumnTransformer that is fitted on the training split only and later becomes the first part of the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Literal, Tuple

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from heartml.dataset import DatasetSpec


class SplitOptions(BaseModel):
    test_size: float = 0.2
    validation_size: float = 0.1
    seed: int = 42


class PreprocessingOptions(BaseModel):
    numeric_imputation: Literal["median", "mean"] = "median"
    scaling: Literal["standard", "minmax", "none"] = "standard"
    categorical_encoding: Literal["onehot"] = "onehot"


@dataclass
class CleaningReport:
    rows_in: int
    duplicates_dropped: int
    rows_out: int
    domain_missing: Dict[str, int]  # per column: values that meant "not measured"
    missing_after_cleaning: Dict[str, int]

    def as_metadata(self) -> Dict[str, object]:
        return asdict(self)


def clean_records(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The row-wise part of cleaning: feature columns only, missing markers as NaN, dtypes fixed.

    Nothing is fitted and no row is dropped, so the registered model applies it to every record it scores.
    """
    df = df[spec.model_features].copy()
    for name in spec.model_features:
        feature = spec.features[name]
        if feature.missing_values:
            df[name] = df[name].mask(df[name].isin(feature.missing_values))
        if feature.kind == "categorical":
            df[name] = df[name].astype("object").where(df[name].notna(), np.nan)
        else:
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    return df


def clean_frame(df: pd.DataFrame, spec: DatasetSpec) -> Tuple[pd.DataFrame, CleaningReport]:
    """Drop excluded columns and duplicates, turn missing markers into NaN, fix dtypes."""
    rows_in = len(df)
    domain_missing = {name: int(df[name].isin(spec.features[name].missing_values).sum())
                      for name in spec.model_features if spec.features[name].missing_values}
    target = (df[spec.target.column] == spec.target.positive).astype("int8")
    df = clean_records(df, spec).assign(**{spec.target.column: target})
    before = len(df)
    df = df.drop_duplicates().reset_index(drop=True)
    report = CleaningReport(
        rows_in=rows_in,
        duplicates_dropped=before - len(df),
        rows_out=len(df),
        domain_missing=domain_missing,
        missing_after_cleaning={c: int(n) for c, n in df.isna().sum().items() if n},
    )
    return df, report


def split_frame(
    df: pd.DataFrame, spec: DatasetSpec, options: SplitOptions
) -> Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded train / validation / test split; sizes are fractions of the whole frame."""
    target = df[spec.target.column]
    rest, test = train_test_split(df, test_size=options.test_size, stratify=target, random_state=options.seed)
    validation_share = options.validation_size / (1.0 - options.test_size)
    train, validation = train_test_split(
        rest, test_size=validation_share, stratify=rest[spec.target.column], random_state=options.seed
    )
    return train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True)


def features_and_target(df: pd.DataFrame, spec: DatasetSpec) -> Tuple[pd.DataFrame, pd.Series]:
    return df.drop(columns=[spec.target.column]), df[spec.target.column]


def build_preprocessor(options: PreprocessingOptions) -> ColumnTransformer:
    """Unfitted imputation + encoding + scaling; columns picked by dtype so engineered columns are included."""
    scalers = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": "passthrough"}
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy=options.numeric_imputation, add_indicator=True)),
         ("scale", scalers[options.scaling])]
    )
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")),
         ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]
    )
    transformer = ColumnTransformer(
        [("numeric", numeric, make_column_selector(dtype_include="number")),
         ("categorical", categorical, make_column_selector(dtype_include=["object", "category"]))],
        verbose_feature_names_out=False,
    )
    return transformer.set_output(transform="pandas")
