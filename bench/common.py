"""What the benchmarks share: the data, split and transforms exactly as a training run config sets them up."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from sklearn.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "training.yaml"
sys.path.insert(0, str(ROOT))

from heartml.dataset import DatasetSpec, load_dataset_spec  # noqa: E402
from heartml.features import FeatureOptions, build_feature_pipeline  # noqa: E402
from heartml.preprocessing import (  # noqa: E402
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    split_frame,
)
from heartml.selection import ModelingOptions  # noqa: E402
from heartml.sources import read_source  # noqa: E402


@dataclass
class TrainingSetup:
    dataset: DatasetSpec
    source: str
    cleaned: pd.DataFrame  # every row, as the pipeline cleans them
    train: pd.DataFrame
    test: pd.DataFrame
    features: Pipeline  # unfitted preprocessing + engineered features
    modeling: ModelingOptions


def training_setup(config_path: Path = DEFAULT_CONFIG) -> TrainingSetup:
    """Read a ZenML run config of the training pipeline and rebuild its data and transforms (no ZenML involved)."""
    config = yaml.safe_load(Path(config_path).read_text())

    def parameters(step: str) -> dict:
        return (config.get("steps", {}).get(step) or {}).get("parameters") or {}

    pipeline_parameters = config.get("parameters") or {}
    dataset = load_dataset_spec(ROOT / (pipeline_parameters.get("dataset_config") or "configs/datasets/heart.yaml"))
    source = pipeline_parameters.get("source") or dataset.default_source
    cleaned, _ = clean_frame(read_source(source, dataset.read_options), dataset)
    preprocessing = parameters("data_preprocessing")
    train, _, test = split_frame(cleaned, dataset, SplitOptions.model_validate(preprocessing.get("split", {})))
    features = build_feature_pipeline(
        build_preprocessor(PreprocessingOptions.model_validate(preprocessing.get("preprocessing", {}))),
        FeatureOptions.model_validate(parameters("feature_engineering").get("features", {})),
    )
    modeling = ModelingOptions.model_validate(parameters("model_building").get("modeling", {}))
    return TrainingSetup(dataset, source, cleaned, train, test, features, modeling)
