"""Custom ZenML materializers. Importing this package registers them."""

from materializers.dataframe import ContentHashedPandasMaterializer
from materializers.drift import DriftReportMaterializer
from materializers.lime import LimeExplanationsMaterializer
from materializers.profile import DataProfileMaterializer
from materializers.reports import EvaluationReportMaterializer, ModelCardMaterializer, ModelComparisonMaterializer
from materializers.shap import ShapExplanationsMaterializer

__all__ = [
    "ContentHashedPandasMaterializer",
    "DataProfileMaterializer",
    "DriftReportMaterializer",
    "EvaluationReportMaterializer",
    "LimeExplanationsMaterializer",
    "ModelCardMaterializer",
    "ModelComparisonMaterializer",
    "ShapExplanationsMaterializer",
]
