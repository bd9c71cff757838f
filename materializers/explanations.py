"""What the LIME and SHAP materializers share: the explanations as JSON that loads back into their pydantic type,
shown in the dashboard as static HTML (no scripts: the dashboard's sandboxed iframe blocks them, which is why
lime's `as_html()` and shap's plots render blank there) and as a PNG."""

from __future__ import annotations

import os
from typing import Any, Callable, ClassVar, Dict, Type

from matplotlib.figure import Figure
from pydantic import BaseModel
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from heartml.reports.rendered import once, png_once


class ExplanationsMaterializer(BaseMaterializer):
    """Subclasses set ASSOCIATED_TYPES, NAME (file stem), and `page` / `figure` (pure functions of the data)."""

    SKIP_REGISTRATION: ClassVar[bool] = True  # a base class: ZenML registers the subclasses only
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS
    NAME: ClassVar[str]
    page: ClassVar[Callable[[Any], str]]
    figure: ClassVar[Callable[[Any], Figure]]

    def _path(self, suffix: str) -> str:
        return os.path.join(self.uri, f"{self.NAME}.{suffix}").replace("\\", "/")

    def load(self, data_type: Type[BaseModel]) -> BaseModel:
        with self.artifact_store.open(self._path("json"), "r") as handle:
            return data_type.model_validate_json(handle.read())

    def save(self, data: BaseModel) -> None:
        with self.artifact_store.open(self._path("json"), "w") as handle:
            handle.write(data.model_dump_json())

    def save_visualizations(self, data: BaseModel) -> Dict[str, VisualizationType]:
        page, image = self._path("html"), self._path("png")
        with self.artifact_store.open(page, "w") as handle:  # as the step logged them to MLflow: drawn once
            handle.write(once(type(self).page, data))
        with self.artifact_store.open(image, "wb") as handle:
            handle.write(png_once(type(self).figure, data))
        return {page: VisualizationType.HTML, image: VisualizationType.IMAGE}
