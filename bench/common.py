"""What the benchmarks share: a training run config read without ZenML, and the data, split and transforms exactly
as that config sets them up."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Type, TypeVar

import pandas as pd
import yaml
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "training.yaml"
sys.path.insert(0, str(ROOT))

from heartml.core.dataset import DatasetSpec, load_dataset_spec  # noqa: E402
from heartml.core.evaluation import ThresholdRule  # noqa: E402
from heartml.core.features import FeatureOptions, build_feature_pipeline  # noqa: E402
from heartml.core.preprocessing import (  # noqa: E402
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    split_frame,
)
from heartml.core.selection import ModelingOptions  # noqa: E402
from heartml.core.sources import read_source  # noqa: E402

Options = TypeVar("Options", bound=BaseModel)


class RunConfig:
    """A ZenML run config of the training pipeline (configs/training.yaml and the like), read as plain YAML."""

    def __init__(self, path: Path = DEFAULT_CONFIG, source: Optional[str] = None, dataset: Optional[str] = None):
        """`dataset` replaces the config's dataset description, as `python run.py --dataset` does."""
        self.path = Path(path)
        self.raw: Dict[str, Any] = yaml.safe_load(self.path.read_text()) or {}
        pipeline_parameters = self.raw.get("parameters") or {}
        self.dataset: DatasetSpec = load_dataset_spec(
            ROOT / (dataset or pipeline_parameters.get("dataset_config") or "configs/datasets/heart.yaml"))
        self.source: str = source or pipeline_parameters.get("source") or self.dataset.default_source

    def parameters(self, step: str) -> Dict[str, Any]:
        return ((self.raw.get("steps") or {}).get(step) or {}).get("parameters") or {}

    @property
    def seed(self) -> int:
        return int((self.raw.get("parameters") or {}).get("seed", 42))

    def options(self, step: str, name: str, model: Type[Options]) -> Options:
        """A step parameter parsed into its options model (the step's default where the config says nothing), with
        the dataset's own `step_parameters` merged over it and the run's one seed where the options have one, as
        the pipeline hands it to each step."""
        options = self.dataset.step_options(step, name, model.model_validate(self.parameters(step).get(name) or {}))
        if "seed" in model.model_fields:
            options = options.model_copy(update={"seed": self.seed})
        if "bootstrap" in model.model_fields:  # the model card's subgroup intervals
            options = options.model_copy(update={"bootstrap": options.bootstrap.model_copy(update={"seed": self.seed})})
        return options


@dataclass
class TrainingSetup:
    dataset: DatasetSpec
    source: str
    cleaned: pd.DataFrame  # every row, as the pipeline cleans them
    train: pd.DataFrame
    test: pd.DataFrame
    features: Pipeline  # unfitted preprocessing + engineered features
    modeling: ModelingOptions
    threshold_rule: ThresholdRule


def training_setup(config_path: Path = DEFAULT_CONFIG, dataset: Optional[str] = None,
                   source: Optional[str] = None) -> TrainingSetup:
    """Read a ZenML run config of the training pipeline and rebuild its data and transforms (no ZenML involved);
    `source` replaces the config's data, as `python run.py --source` does."""
    config = RunConfig(config_path, source=source, dataset=dataset)
    dataset = config.dataset
    cleaned, _ = clean_frame(read_source(config.source, dataset.read_options), dataset)
    train, test = split_frame(cleaned, dataset, config.options("data_preprocessing", "split", SplitOptions))
    features = build_feature_pipeline(
        build_preprocessor(config.options("data_preprocessing", "preprocessing", PreprocessingOptions), dataset),
        config.options("feature_engineering", "features", FeatureOptions),
        dataset,
    )
    modeling = config.options("model_building", "modeling", ModelingOptions)
    threshold_rule = config.options("model_evaluation", "decision_threshold", ThresholdRule)
    return TrainingSetup(dataset, config.source, cleaned, train, test, features, modeling, threshold_rule)


def write_json(path: Optional[str], figure: Dict[str, Any]) -> None:
    """A benchmark's figure for bench/run_all.py (or anyone) to read back."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figure, indent=2))
