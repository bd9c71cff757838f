"""Stage 2: clean rows (missing markers, dtypes, duplicates), split (stratified, seeded), and declare the
preprocessing transforms (outliers, imputation, encoding, scaling), unfitted: they are fitted once, with the model."""

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
    split_frame,
)
from materializers import ContentHashedPandasMaterializer


@step(output_materializers={"train_set": ContentHashedPandasMaterializer, "test_set": ContentHashedPandasMaterializer})
def data_preprocessing(
    raw_dataset: pd.DataFrame,
    dataset: DatasetSpec,
    seed: int,
    split: SplitOptions = SplitOptions(),
    cleaning: CleaningOptions = CleaningOptions(),
    preprocessing: PreprocessingOptions = PreprocessingOptions(),
) -> Tuple[
    Annotated[pd.DataFrame, "train_set"],
    Annotated[pd.DataFrame, "test_set"],
    Annotated[ColumnTransformer, "preprocessing"],
]:
    """Cleaned raw-space splits (target as 0/1) and the unfitted preprocessing transforms (a ColumnTransformer).
    The dataset description's `step_parameters` are merged over these options."""
    split = dataset.step_options("data_preprocessing", "split", split)
    cleaning = dataset.step_options("data_preprocessing", "cleaning", cleaning)
    preprocessing = dataset.step_options("data_preprocessing", "preprocessing", preprocessing)
    cleaned, report = clean_frame(raw_dataset, dataset, cleaning)
    train, test = split_frame(cleaned, dataset, split.model_copy(update={"seed": seed}))
    cleaning_counts = report.as_metadata()
    log_metadata(metadata={"cleaning": cleaning_counts})
    for name, frame in {"train_set": train, "test_set": test}.items():  # each split: the counts of its source rows
        log_metadata(
            metadata={"rows": len(frame), "positive_share": float(frame[dataset.target.column].mean()),
                      "missing_cells": int(frame.isna().sum().sum()), "cleaning": cleaning_counts},
            infer_artifact=True,
            artifact_name=name,
        )
    log_metadata(metadata={"fitted": False, "options": preprocessing.model_dump()}, infer_artifact=True,
                 artifact_name="preprocessing")
    return train, test, build_preprocessor(preprocessing, dataset)
