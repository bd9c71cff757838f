"""Custom materializers on a throw-away local artifact store: data round-trips, visualizations are script-free."""

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heartml.core.dataset import AcceptanceLimits
from heartml.core.evaluation import (
    CalibrationFit,
    Estimate,
    EvaluationReport,
    OperatingPoint,
    check_fitting,
)
from heartml.core.explain import Contribution, FeatureImportance, LimeExplanations, PatientExplanation
from tests.html_page import read_page


def materialize(materializer_class, data, store, uri):
    Path(uri).mkdir(parents=True)
    materializer = materializer_class(uri, artifact_store=store)
    materializer.save(data)
    visualizations = materializer.save_visualizations(data)
    return materializer, visualizations


def html_of(visualizations):
    from zenml.enums import VisualizationType

    pages = [Path(uri).read_text() for uri, kind in visualizations.items() if kind == VisualizationType.HTML]
    assert len(pages) == 1
    return pages[0]


def assert_static(page: str) -> None:
    lowered = page.lower()
    assert "<script" not in lowered and "javascript:" not in lowered and " onload=" not in lowered
    assert lowered.startswith("<!doctype html>") and lowered.endswith("</html>")


def lime_explanations() -> LimeExplanations:
    patients = [
        PatientExplanation(patient=i, record={"Age": 50.0 + i, "ST_Slope": "Flat", "Cholesterol": None},
                           probability=0.8, label=1, intercept=0.3, local_prediction=0.75, local_r2=0.6,
                           contributions=[Contribution(feature="ST_Slope", condition="ST_Slope=Flat", weight=0.4),
                                          Contribution(feature="Age", condition="Age > 55.00 <b>", weight=-0.1)])
        for i in range(3)
    ]
    return LimeExplanations(
        model="XGBClassifier", positive_class="HeartDisease", feature_names=["Age", "ST_Slope"],
        categorical_features=["ST_Slope"], num_samples=5000, num_features=10, seed=42, n_jobs=2, seconds=1.5,
        patients=patients,
        global_importance=[FeatureImportance(feature="ST_Slope", mean_abs_weight=0.4, mean_weight=0.4,
                                             patients_in_top=3),
                           FeatureImportance(feature="Age", mean_abs_weight=0.1, mean_weight=-0.1, patients_in_top=3)],
    )


def test_lime_materializer_round_trips_and_shows_static_html_and_png(artifact_store, tmp_path):
    from materializers import LimeExplanationsMaterializer

    data = lime_explanations()
    materializer, visualizations = materialize(LimeExplanationsMaterializer, data, artifact_store,
                                               str(tmp_path / "store" / "a"))
    loaded = materializer.load(LimeExplanations)
    assert loaded == data and loaded.patient(2).record["Age"] == 52.0
    page = html_of(visualizations)
    assert_static(page)
    assert "ST_Slope=Flat" in page and "patient 2" in page
    assert "Age &gt; 55.00 &lt;b&gt;" in page  # values are escaped, not markup
    shown = read_page(page)
    assert {"+0.400", "-0.100"} <= {cells[-1] for cells in shown.rows()}  # weights with their sign
    assert shown.open_details == 1 < shown.details  # the first patient's card is unfolded, the others are not
    pngs = [uri for uri in visualizations if uri.endswith(".png")]
    assert len(pngs) == 1 and Path(pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert materializer.extract_metadata(data)["top_features"] == ["ST_Slope", "Age"]


def test_evaluation_report_and_comparison_materializers_render_static_html(artifact_store, tmp_path):
    from materializers import EvaluationReportMaterializer, ModelComparisonMaterializer

    estimate = Estimate(value=0.93, low=0.9, high=0.96)
    report = EvaluationReport(
        model_name="xgboost", test_rows=184, test_positives=102, decision_threshold=0.5,
        threshold_rule="fixed at 0.5", metrics={"roc_auc": estimate}, confidence=0.95, bootstrap_resamples=1000,
        calibration=CalibrationFit(slope=0.95, intercept=-0.02),
        operating_points=[OperatingPoint(name="screening", threshold=0.3, rule="r", cv_sensitivity=0.9,
                                         cv_specificity=0.7, test_sensitivity=0.92, test_specificity=0.71,
                                         test_precision=0.8)],
        fitting=check_fitting("roc_auc", 0.99, 0.93, 0.92, AcceptanceLimits()),
    )
    materializer, visualizations = materialize(EvaluationReportMaterializer, report, artifact_store,
                                               str(tmp_path / "store" / "r"))
    assert materializer.load(EvaluationReport) == report
    page = html_of(visualizations)
    assert_static(page)
    assert "verdict: ok" in page and "screening" in page
    assert materializer.extract_metadata(report)["screening_threshold"] == 0.3

    comparison = pd.DataFrame({"family": ["xgboost", "logistic_regression"], "selected": [True, False],
                               "cv_mean": [0.934, 0.93], "cv_std": [0.02, 0.03], "train_score": [0.98, np.nan],
                               "params": ['{"max_depth": 3}', '{"C": 0.3}'], "scoring": ["roc_auc"] * 2,
                               "test_roc_auc": [0.935, 0.93]})
    materializer, visualizations = materialize(ModelComparisonMaterializer, comparison, artifact_store,
                                               str(tmp_path / "store" / "c"))
    pd.testing.assert_frame_equal(materializer.load(pd.DataFrame), comparison)
    page = html_of(visualizations)
    assert_static(page)
    shown = read_page(page)
    assert [cells[0] for cells in shown.highlighted()] == ["xgboost"] and "max_depth" in shown.text


def test_shap_materializer_round_trips_and_shows_static_html_and_png(artifact_store, tmp_path):
    from heartml.core.explain import LimeStability
    from heartml.core.shapley import Agreement, PatientShap, ShapExplanations, ShapImportance
    from materializers import ShapExplanationsMaterializer

    patients = [PatientShap(patient=i, probability=0.7, output=0.7, base_value=0.5,
                            values={"ST_Slope": 0.25, "Age": -0.05}) for i in range(3)]
    data = ShapExplanations(
        model="XGBClassifier", method="tree", why="TreeSHAP <b>", positive_class="HeartDisease",
        feature_names=["ST_Slope", "Age"], background_rows=100, seed=42, seconds=0.4, patients=patients,
        global_importance=[ShapImportance(feature="ST_Slope", mean_abs_value=0.25, mean_value=0.25),
                           ShapImportance(feature="Age", mean_abs_value=0.05, mean_value=-0.05)],
        agreement=Agreement(patients=3, global_rank_correlation=1.0, top_overlap=0.67, top_features=3),
        lime_stability=LimeStability(seeds=[43, 44], patients=3, top_overlap=0.9, rank_correlation=0.8))
    materializer, visualizations = materialize(ShapExplanationsMaterializer, data, artifact_store,
                                               str(tmp_path / "store" / "shap"))
    assert materializer.load(ShapExplanations) == data
    page = html_of(visualizations)
    assert_static(page)
    assert "TreeSHAP &lt;b&gt;" in page and "patient 2: P(HeartDisease) = 0.700 = 0.500 (background) +0.200" in page
    shown = read_page(page)
    cells = {cells[-1] for cells in shown.rows()}
    assert {"+0.250", "-0.050", "0.670", "0.900"} <= cells
    assert shown.open_details == 1 < shown.details
    assert materializer.extract_metadata(data)["lime_top_overlap"] == 0.67
    pngs = [uri for uri in visualizations if uri.endswith(".png")]
    assert len(pngs) == 1 and Path(pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dataframe_materializer_writes_zstd_parquet_that_zenml_reads_back(artifact_store, tmp_path):
    """Frames and series round-trip through ZenML's own load; the file is Parquet compressed with zstd."""
    import pyarrow.parquet as pq

    from materializers import ContentHashedPandasMaterializer

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"proba": rng.random(500), "label": rng.integers(0, 2, 500),
                          "sex": rng.choice(["M", "F", None], 500)}, index=np.arange(1000, 1500))
    materializer, _ = materialize(ContentHashedPandasMaterializer, frame, artifact_store,
                                  str(tmp_path / "store" / "f"))
    pd.testing.assert_frame_equal(materializer.load(pd.DataFrame), frame)
    codecs = {pq.ParquetFile(materializer.parquet_path).metadata.row_group(0).column(i).compression
              for i in range(3)}
    assert codecs == {"ZSTD"}
    series = pd.Series(rng.random(20), name="proba")
    materializer, _ = materialize(ContentHashedPandasMaterializer, series, artifact_store,
                                  str(tmp_path / "store" / "s"))
    pd.testing.assert_series_equal(materializer.load(pd.Series), series, check_names=False)


def test_dataframe_reads_and_writes_give_pyarrows_kept_buffers_back(artifact_store, tmp_path, monkeypatch):
    """pyarrow's allocator keeps what a Parquet read or write freed (1M patients: ~170 MB) unless told."""
    import pyarrow

    from heartml.core import sources
    from materializers import ContentHashedPandasMaterializer

    pool, caller, released = pyarrow.default_memory_pool(), threading.get_ident(), []

    class CountingPool:  # counts this thread's calls only
        def release_unused(self):
            if threading.get_ident() == caller:
                released.append(pool.bytes_allocated())
            pool.release_unused()

    monkeypatch.setattr(pyarrow, "default_memory_pool", CountingPool)
    frame = pd.DataFrame({"proba": np.linspace(0, 1, 300), "sex": ["M", "F", "F"] * 100})
    materializer, _ = materialize(ContentHashedPandasMaterializer, frame, artifact_store,
                                  str(tmp_path / "store" / "f"))
    assert len(released) == 1
    pd.testing.assert_frame_equal(materializer.load(pd.DataFrame), frame)
    assert len(released) == 2
    pd.testing.assert_frame_equal(sources.read_source(f"{materializer.parquet_path}#format=parquet"), frame)
    assert len(released) == 3
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(sources.DataSourceError):
        sources.read_source(str(tmp_path / "broken.parquet"))
    assert len(released) == 4  # a failed read too
