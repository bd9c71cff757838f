"""LIME explanations as a ZenML artifact (JSON, static HTML and PNG: materializers/explanations.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple, Type

from heartml.core.explain import LimeExplanations
from heartml.reports.pages import explanations_html
from heartml.reports.plots import lime_figure
from materializers.explanations import ExplanationsMaterializer


class LimeExplanationsMaterializer(ExplanationsMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (LimeExplanations,)
    NAME = "explanations"
    page = staticmethod(explanations_html)
    figure = staticmethod(lime_figure)

    def extract_metadata(self, data: LimeExplanations) -> Dict[str, Any]:
        return {
            "patients": len(data.patients),
            "num_samples": data.num_samples,
            "seconds": round(data.seconds, 2),
            "patients_per_second": round(data.patients_per_second, 1),
            "top_features": [f.feature for f in data.global_importance[:5]],
        }
