"""The first step of every registered model: each batch of records checked against the training schema before
anything else sees it, so every server that loads the model (MLflow's scoring server, a notebook, batch scoring)
refuses an impossible patient with the pipeline's own one-line messages instead of scoring it.

It raises MLflow's INVALID_PARAMETER_VALUE exception, which MLflow's scoring server answers with a 400 naming the
column and the rule. This module ships inside the model (with heartml/core) and imports only MLflow and the core.
"""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from sklearn.base import BaseEstimator, TransformerMixin

from heartml.core.dataset import DatasetSpec
from heartml.core.errors import InputError
from heartml.core.validation import validate_records

SOURCE = "request"  # how the messages name what was sent


class RecordGuard(TransformerMixin, BaseEstimator):
    """Passes records through unchanged once they meet the training schema's column rules (required columns,
    types, ranges, known categories; no target, no training-set rules); raises otherwise."""

    def __init__(self, spec: Optional[DatasetSpec] = None):
        self.spec = spec

    def fit(self, X: Any, y: Any = None) -> "RecordGuard":
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # nothing to learn: the rules come with the dataset description

    def transform(self, X: Any) -> pd.DataFrame:
        records = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        try:
            validate_records(records, self.spec, SOURCE)
        except InputError as exc:
            raise MlflowException("\n".join(exc.lines), error_code=INVALID_PARAMETER_VALUE) from None
        return records
