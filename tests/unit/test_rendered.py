"""Reports rendered once per process: what the step logs to MLflow is what its materializer shows in ZenML."""

from pathlib import Path

import mlflow

from heartml.reports import rendered
from heartml.reports.pages import explanations_html
from heartml.reports.plots import lime_figure, png_bytes
from tests.unit.test_materializers import lime_explanations, materialize


def test_a_report_of_the_same_content_is_rendered_once_and_equal_to_a_fresh_render():
    calls = []

    def page(data):
        calls.append(data)
        return explanations_html(data)

    first, same_content = lime_explanations(), lime_explanations()
    assert first is not same_content
    assert rendered.once(page, first) == rendered.once(page, same_content) == explanations_html(first)
    assert len(calls) == 1
    changed = first.model_copy(update={"seconds": first.seconds + 1})
    assert rendered.once(page, changed) == explanations_html(changed) and len(calls) == 2


def test_a_figure_is_drawn_once_and_its_png_is_the_figures():
    drawn = []

    def figure(data):
        drawn.append(data)
        return lime_figure(data)

    data = lime_explanations()
    png = rendered.png_once(figure, data)
    assert rendered.png_once(figure, lime_explanations()) == png and len(drawn) == 1
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == png_bytes(lime_figure(data))


def test_mlflow_and_the_dashboard_get_the_same_page_and_png(mlflow_store, artifact_store, tmp_path):
    from heartml.reports.tracking import log_explanations
    from materializers import LimeExplanationsMaterializer

    data = lime_explanations()
    with mlflow.start_run() as run:
        log_explanations(data)
    logged = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="explanations",
                                                      dst_path=str(tmp_path / "logged")))
    _, visualizations = materialize(LimeExplanationsMaterializer, data, artifact_store, str(tmp_path / "store" / "a"))
    shown = {Path(uri).suffix: Path(uri).read_bytes() for uri in visualizations}
    assert shown[".html"] == (logged / "lime.html").read_bytes()
    assert shown[".png"] == (logged / "lime.png").read_bytes()
