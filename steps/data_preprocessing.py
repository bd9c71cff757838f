"""Stage 2: clean rows, split (stratified, seeded), fit outlier handling/imputation/encoding/scaling on train."""

from typing import Tuple

import pandas as pd
from sklearn.compose import ColumnTransformer
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.core.dataset import DatasetSpec
from heartml.core.preprocessing import (
    CleaningOptions,
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    outlier_report,
    split_frame,
)
from materializers import ContentHashedPandasMaterializer

_FRAMES = {name: ContentHashedPandasMaterializer for name in ("train_set", "validation_set", "test_set")}


@step(output_materializers=_FRAMES)
def data_preprocessing(
    raw_dataset: pd.DataFrame,
    dataset: DatasetSpec,
    split: SplitOptions = SplitOptions(),
    cleaning: CleaningOptions = CleaningOptions(),
    preprocessing: PreprocessingOptions = PreprocessingOptions(),
) -> Tuple[
    Annotated[pd.DataFrame, "train_set"],
    Annotated[pd.DataFrame, "validation_set"],
    Annotated[pd.DataFrame, "test_set"],
    Annotated[ColumnTransformer, "preprocessor"],
]:
    """Cleaned raw-space splits (target as 0/1) and the preprocessing transforms fitted on the training split."""
    cleaned, report = clean_frame(raw_dataset, dataset, cleaning)
    train, validation, test = split_frame(cleaned, dataset, split)
    preprocessor = build_preprocessor(preprocessing, dataset)
    preprocessor.fit(features_and_target(train, dataset)[0])
    frames = {"train_set": train, "validation_set": validation, "test_set": test}
    cleaning = report.as_metadata()
    log_metadata(metadata={"cleaning": cleaning})
    for name, frame in frames.items():  # each split carries the cleaning counts of the rows it came from
        log_metadata(
            metadata={"rows": len(frame), "positive_share": float(frame[dataset.target.column].mean()),
                      "missing_cells": int(frame.isna().sum().sum()), "cleaning": cleaning},
            infer_artifact=True,
            artifact_name=name,
        )
    outliers = outlier_report(preprocessor, frames)
    log_metadata(
        metadata={"fitted_on_rows": len(train), "output_features": len(preprocessor.get_feature_names_out()),
                  "options": preprocessing.model_dump(), **({"outliers": outliers} if outliers else {})},
        infer_artifact=True,
        artifact_name="preprocessor",
    )
    return train, validation, test, preprocessor
