"""Dataset descriptions (configs/datasets/*.yaml): target, feature types, ranges, missing markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import yaml
from pydantic import BaseModel, Field, model_validator

FeatureKind = Literal["numeric", "categorical", "binary"]


class FeatureSpec(BaseModel):
    kind: FeatureKind
    min: Optional[float] = None
    max: Optional[float] = None
    categories: Optional[List[str]] = None
    # Values that mean "not measured" in this column (e.g. Cholesterol == 0).
    missing_values: List[Any] = Field(default_factory=list)


class TargetSpec(BaseModel):
    column: str
    positive: Any = 1


class DatasetSpec(BaseModel):
    """Everything the pipeline needs to know about one tabular heart dataset."""

    name: str
    description: str = ""
    default_source: str
    target: TargetSpec
    features: Dict[str, FeatureSpec]
    exclude: List[str] = Field(default_factory=list)
    min_rows: int = 50
    min_minority_share: float = 0.05
    # pandas.read_csv options for this dataset's files (e.g. thousands=",").
    read_options: Dict[str, Any] = Field(default_factory=dict)
    # Columns used for subgroup metrics: name -> column.
    subgroups: Dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "DatasetSpec":
        for name, feature in self.features.items():
            if feature.kind == "categorical" and not feature.categories:
                raise ValueError(f"feature {name!r} is categorical but lists no categories")
        return self

    @property
    def model_features(self) -> List[str]:
        """Feature columns the model sees, in config order (excluded columns dropped)."""
        return [c for c in self.features if c not in self.exclude]

    def columns_of_kind(self, *kinds: str) -> List[str]:
        return [c for c in self.model_features if self.features[c].kind in kinds]


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a dataset description file."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    try:
        return DatasetSpec.model_validate(raw)
    except Exception as exc:  # pydantic's message is multi-line; keep the file name in front
        raise ValueError(f"{path}: invalid dataset description: {exc}") from exc
