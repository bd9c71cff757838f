"""Evaluation artifacts and the model card, with a script-free HTML view in the dashboard."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, Tuple, Type

import pandas as pd
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from heartml.core.evaluation import EvaluationReport
from heartml.reports.model_card import ModelCard
from heartml.reports.pages import comparison_html, evaluation_report_html, model_card_html
from heartml.reports.rendered import once
from materializers.dataframe import ContentHashedPandasMaterializer


def write_html(materializer: Any, name: str, page: str) -> Dict[str, VisualizationType]:
    uri = os.path.join(materializer.uri, name).replace("\\", "/")
    with materializer.artifact_store.open(uri, "w") as handle:
        handle.write(page)
    return {uri: VisualizationType.HTML}


class ModelComparisonMaterializer(ContentHashedPandasMaterializer):
    """A comparison frame stored like any DataFrame, shown as an HTML table (selected candidate highlighted)."""

    SKIP_REGISTRATION: ClassVar[bool] = True  # only where a step asks for it, not for every DataFrame

    def save_visualizations(self, df: pd.DataFrame) -> Dict[str, VisualizationType]:
        return write_html(self, "comparison.html", comparison_html(df))


class EvaluationReportMaterializer(PydanticMaterializer):
    """The evaluation report as JSON (pydantic) plus its HTML page."""

    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save_visualizations(self, data: EvaluationReport) -> Dict[str, VisualizationType]:
        return write_html(self, "report.html", evaluation_report_html(data))

    def extract_metadata(self, data: EvaluationReport) -> Dict[str, Any]:
        return data.as_metadata()  # instead of the pydantic default: the JSON schema


class ModelCardMaterializer(PydanticMaterializer):
    """The model card as JSON (pydantic) plus its HTML page."""

    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (ModelCard,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def save_visualizations(self, data: ModelCard) -> Dict[str, VisualizationType]:
        return write_html(self, "model_card.html", once(model_card_html, data))  # as write_model_card logged it

    def extract_metadata(self, data: ModelCard) -> Dict[str, Any]:
        return data.summary_metadata()
