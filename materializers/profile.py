"""DataProfile artifacts: JSON that loads back into the Python object, shown in the dashboard as static HTML."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from heartml.reports.profile import DataProfile, render_profile_html


class DataProfileMaterializer(PydanticMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (DataProfile,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save_visualizations(self, data: DataProfile) -> Dict[str, VisualizationType]:
        path = os.path.join(self.uri, "profile.html")
        with self.artifact_store.open(path, "w") as handle:
            handle.write(render_profile_html(data))
        return {path.replace("\\", "/"): VisualizationType.HTML}

    def extract_metadata(self, data: DataProfile) -> Dict[str, Any]:
        return {
            "rows": data.rows,
            "columns": data.columns,
            "duplicate_rows": data.duplicate_rows,
            "missing_or_not_measured": data.missing_total,
            "target_counts": data.target_counts,
        }
