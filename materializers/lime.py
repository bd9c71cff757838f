"""LIME explanations as a ZenML artifact: JSON that loads back into `LimeExplanations`, shown in the dashboard as
static HTML (no scripts: the dashboard's sandboxed iframe blocks them, which is why lime's own `as_html()` renders
blank there) and as a PNG."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from heartml.core.explain import LimeExplanations
from heartml.reports.pages import explanations_html
from heartml.reports.plots import lime_figure

DATA_FILE = "explanations.json"


class LimeExplanationsMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (LimeExplanations,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: Type[Any]) -> LimeExplanations:
        with self.artifact_store.open(os.path.join(self.uri, DATA_FILE), "r") as handle:
            return LimeExplanations.model_validate_json(handle.read())

    def save(self, data: LimeExplanations) -> None:
        with self.artifact_store.open(os.path.join(self.uri, DATA_FILE), "w") as handle:
            handle.write(data.model_dump_json())

    def save_visualizations(self, data: LimeExplanations) -> Dict[str, VisualizationType]:
        page = os.path.join(self.uri, "explanations.html").replace("\\", "/")
        with self.artifact_store.open(page, "w") as handle:
            handle.write(explanations_html(data))
        image = os.path.join(self.uri, "explanations.png").replace("\\", "/")
        with self.artifact_store.open(image, "wb") as handle:
            lime_figure(data).savefig(handle, format="png", dpi=100)
        return {page: VisualizationType.HTML, image: VisualizationType.IMAGE}

    def extract_metadata(self, data: LimeExplanations) -> Dict[str, Any]:
        return {
            "patients": len(data.patients),
            "num_samples": data.num_samples,
            "seconds": round(data.seconds, 2),
            "patients_per_second": round(data.patients_per_second, 1),
            "top_features": [f.feature for f in data.global_importance[:5]],
        }
