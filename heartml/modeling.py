"""Candidate model families, each trained as one sklearn Pipeline: feature transforms + classifier."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

FAMILIES = ("xgboost", "random_forest", "logistic_regression")


class ModelingOptions(BaseModel):
    families: List[str] = Field(default_factory=lambda: ["xgboost"])
    params: Dict[str, Dict[str, Any]] = Field(default_factory=dict)  # fixed params per family
    cv_folds: int = 5
    scoring: str = "roc_auc"
    seed: int = 42
    n_jobs: int = 1


def make_estimator(family: str, params: Dict[str, Any], seed: int, n_jobs: int = 1) -> ClassifierMixin:
    if family == "xgboost":
        defaults = dict(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                        colsample_bytree=0.8, eval_metric="logloss", tree_method="hist")
        return XGBClassifier(**{**defaults, **params}, random_state=seed, n_jobs=n_jobs)
    if family == "random_forest":
        defaults = dict(n_estimators=300, min_samples_leaf=2)
        return RandomForestClassifier(**{**defaults, **params}, random_state=seed, n_jobs=n_jobs)
    if family == "logistic_regression":
        defaults = dict(C=1.0, max_iter=2000)
        return LogisticRegression(**{**defaults, **params}, random_state=seed)
    raise ValueError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")


def assemble_model(feature_pipeline: Pipeline, estimator: ClassifierMixin) -> Pipeline:
    """Raw patient records in, probabilities out: every fitted transform travels with the classifier."""
    return Pipeline([("features", clone(feature_pipeline)), ("classifier", estimator)])


def cross_validate(model: Pipeline, X: pd.DataFrame, y: pd.Series, folds: int, scoring: str, seed: int) -> np.ndarray:
    """Stratified k-fold scores; the whole pipeline is refitted inside every fold (no leakage)."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_score(clone(model), X, y, cv=cv, scoring=scoring)
