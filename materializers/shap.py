"""SHAP values as a ZenML artifact: JSON that loads back into `ShapExplanations`, shown in the dashboard as
script-free HTML and as a PNG (shap's own plots are JavaScript or pyplot; the dashboard's iframe runs no scripts)."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from heartml.core.shapley import ShapExplanations
from heartml.reports.pages import shap_html
from heartml.reports.plots import shap_figure

DATA_FILE = "shap.json"


class ShapExplanationsMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (ShapExplanations,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: Type[Any]) -> ShapExplanations:
        with self.artifact_store.open(os.path.join(self.uri, DATA_FILE), "r") as handle:
            return ShapExplanations.model_validate_json(handle.read())

    def save(self, data: ShapExplanations) -> None:
        with self.artifact_store.open(os.path.join(self.uri, DATA_FILE), "w") as handle:
            handle.write(data.model_dump_json())

    def save_visualizations(self, data: ShapExplanations) -> Dict[str, VisualizationType]:
        page = os.path.join(self.uri, "shap.html").replace("\\", "/")
        with self.artifact_store.open(page, "w") as handle:
            handle.write(shap_html(data))
        image = os.path.join(self.uri, "shap.png").replace("\\", "/")
        with self.artifact_store.open(image, "wb") as handle:
            shap_figure(data).savefig(handle, format="png", dpi=100)
        return {page: VisualizationType.HTML, image: VisualizationType.IMAGE}

    def extract_metadata(self, data: ShapExplanations) -> Dict[str, Any]:
        agreement = data.agreement
        return {
            "method": data.method,
            "patients": len(data.patients),
            "seconds": round(data.seconds, 2),
            "top_features": [f.feature for f in data.global_importance[:5]],
            **({"lime_rank_correlation": round(agreement.global_rank_correlation, 3),
                "lime_top_overlap": round(agreement.top_overlap, 3)} if agreement else {}),
        }
