"""The drift report as a ZenML artifact: JSON (pydantic) plus a script-free HTML view in the dashboard."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from heartml.monitoring.drift import DriftReport
from heartml.reports.pages import drift_html
from materializers.reports import write_html


class DriftReportMaterializer(PydanticMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (DriftReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save_visualizations(self, data: DriftReport) -> Dict[str, VisualizationType]:
        return write_html(self, "drift.html", drift_html(data))

    def extract_metadata(self, data: DriftReport) -> Dict[str, Any]:
        return {**data.summary(), "model_version": data.model_version, "tests": len(data.tests)}
