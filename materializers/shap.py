"""SHAP values as a ZenML artifact (JSON, static HTML and PNG: materializers/explanations.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple, Type

from heartml.core.shapley import ShapExplanations
from heartml.reports.pages import shap_html
from heartml.reports.plots import shap_figure
from materializers.explanations import ExplanationsMaterializer


class ShapExplanationsMaterializer(ExplanationsMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (ShapExplanations,)
    NAME = "shap"
    page = staticmethod(shap_html)
    figure = staticmethod(shap_figure)

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
