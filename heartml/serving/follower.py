"""The served model follows its registry alias: a background thread checks the alias every interval and, when
it points at another complete version, loads that version beside the current one and then swaps the reference.
A request holds the model it started with, so a promotion or a rollback never fails or mixes a request; a
version that does not load is reported and the current one stays.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Optional

import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from heartml.registry.model_versions import load_scoring_model, serving_version, training_reference, version_id
from heartml.registry.serving import ServingModel, serving_model_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, ready to score: its pipeline after the record guard (the server validates each
    request with the same rules first, to answer 400 with their messages), threshold and training schema."""

    serving: ServingModel  # name, version, alias, uri, decision_threshold, dataset
    scorer: Pipeline
    reference: Optional[pd.DataFrame]  # training features + out-of-fold probability (SHAP background)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    load_seconds: float = 0.0  # from the alias check to the swap: a promotion is served within interval + this


def load_version(client: MlflowClient, serving: ServingModel) -> LoadedModel:
    return LoadedModel(
        serving=serving, scorer=load_scoring_model(serving.uri),
        reference=training_reference(client, serving.name, serving.version),
    )


class ModelFollower:
    """`current` is the loaded version behind `alias`; `start()` keeps it so every `interval_seconds`."""

    def __init__(self, client: MlflowClient, name: str, alias: str, interval_seconds: float,
                 loader: Callable[[MlflowClient, ServingModel], LoadedModel] = load_version):
        self.client, self.name, self.alias, self.interval = client, name, alias, interval_seconds
        self._loader = loader
        self.current: Optional[LoadedModel] = None
        self.last_checked: Optional[datetime] = None
        self.last_error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def refresh(self) -> bool:
        """Check the alias once; load and swap in its version if it moved. Whether the served version changed."""
        self.last_checked = datetime.now(timezone.utc).replace(microsecond=0)
        started = time.perf_counter()
        try:
            target = serving_version(self.client, self.name, self.alias)
            if self.current is not None and version_id(target) == self.current.serving.version:
                self.last_error = None
                return False
            loaded = self._loader(self.client, serving_model_of(self.client, target, self.alias))
            loaded = replace(loaded, load_seconds=round(time.perf_counter() - started, 3))
        except Exception as error:  # the registry is away or the version is broken: keep serving what works
            self.last_error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
            logger.warning("alias %s of %s not followed: %s", self.alias, self.name, self.last_error)
            return False
        previous, self.current, self.last_error = self.current, loaded, None  # one reference swap
        logger.info("serving %s version %s (%s)%s, loaded in %.1f s", loaded.serving.name, loaded.serving.version,
                    self.alias, f", was version {previous.serving.version}" if previous else "", loaded.load_seconds)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="alias-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 30)

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()
