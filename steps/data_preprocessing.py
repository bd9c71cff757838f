"""Stage 2: clean rows, split (stratified, seeded), fit imputation/encoding/scaling on the training split."""

from typing import Tuple

import pandas as pd
from sklearn.compose import ColumnTransformer
from typing_extensions import Annotated
from zenml import log_metadata, step

from heartml.dataset import DatasetSpec
from heartml.preprocessing import (
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    split_frame,
)
from materializers import ContentHashedPandasMaterializer

_FRAMES = {name: ContentHashedPandasMaterializer for name in ("train_set", "validation_set", "test_set")}


@step(output_materializers=_FRAMES)
def data_preprocessing(
    raw_dataset: pd.DataFrame,
    dataset: DatasetSpec,
    split: SplitOptions = SplitOptions(),
    preprocessing: PreprocessingOptions = PreprocessingOptions(),
) -> Tuple[
    Annotated[pd.DataFrame, "train_set"],
    Annotated[pd.DataFrame, "validation_set"],
    Annotated[pd.DataFrame, "test_set"],
    Annotated[ColumnTransformer, "preprocessor"],
]:
    cleaned, report = clean_frame(raw_dataset, dataset)
    train, validation, test = split_frame(cleaned, dataset, split)
    preprocessor = build_preprocessor(preprocessing)
    preprocessor.fit(features_and_target(train, dataset)[0])
    log_metadata(metadata={"cleaning": report.as_metadata()})
    for name, frame in (("train_set", train), ("validation_set", validation), ("test_set", test)):
        log_metadata(
            metadata={"rows": len(frame), "positive_share": float(frame[dataset.target.column].mean())},
            infer_artifact=True,
            artifact_name=name,
        )
    log_metadata(
        metadata={"fitted_on_rows": len(train), "output_features": len(preprocessor.get_feature_names_out())},
        infer_artifact=True,
        artifact_name="preprocessor",
    )
    return train, validation, test, preprocessor
