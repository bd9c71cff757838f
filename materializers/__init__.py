"""Custom ZenML materializers. Importing this package registers them."""

from materializers.dataframe import ContentHashedPandasMaterializer
from materializers.lime import LimeExplanationsMaterializer
from materializers.reports import EvaluationReportMaterializer, ModelComparisonMaterializer

__all__ = [
    "ContentHashedPandasMaterializer",
    "EvaluationReportMaterializer",
    "LimeExplanationsMaterializer",
    "ModelComparisonMaterializer",
]
