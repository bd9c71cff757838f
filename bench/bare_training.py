"""The training pipeline's computation as a plain script, without ZenML: the reference for ZenML's overhead.

    python bench/bare_training.py [--config configs/training.yaml] [--source URI] [--json times.json]

Calls the heartml functions the steps call, in the pipeline's order, with the step parameters of the same run
config, and does the same MLflow work (tuning runs, selection, evaluation and LIME logging, model registration,
promotion gate) against a throw-away SQLite tracking store. Left out, because they are what ZenML adds: the
artifact store (saving, hashing and loading every step output, dashboard visualizations), the ZenML metadata, tags
and model version, step caching and run bookkeeping.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator

import mlflow  # noqa: E402  (after common: the project on sys.path)
from common import ROOT, RunConfig, write_json
from mlflow.tracking import MlflowClient  # noqa: E402

from heartml.core.evaluation import (  # noqa: E402
    BootstrapOptions,
    ThresholdRule,
    comparison_with_test_metrics,
    enforce_quality_gate,
    evaluate_model,
)
from heartml.core.explain import ExplainOptions, explain_patients  # noqa: E402
from heartml.core.features import (  # noqa: E402
    FeatureOptions,
    build_feature_pipeline,
    describe_feature_pipeline,
    outliers_seen,
)
from heartml.core.preprocessing import (  # noqa: E402
    CleaningOptions,
    PreprocessingOptions,
    SplitOptions,
    build_preprocessor,
    clean_frame,
    features_and_target,
    split_frame,
)
from heartml.core.selection import ModelingOptions, select_model  # noqa: E402
from heartml.core.shapley import ShapOptions, compare_with_lime, shap_patients  # noqa: E402
from heartml.core.sources import display_uri, read_source  # noqa: E402
from heartml.core.validation import validate_frame  # noqa: E402
from heartml.core.versioning import DataVersion, row_hashes, source_commit  # noqa: E402
from heartml.registry.model_versions import (  # noqa: E402
    drift_reference,
    mark_complete,
    provenance_tags,
    register_model_version,
)
from heartml.registry.promotion import PromotionPolicy, advance_staging, run_gate  # noqa: E402
from heartml.reports.model_card import MLFLOW_CARD_PATH, IntendedUse, ModelCardOptions, build_model_card  # noqa: E402
from heartml.reports.pages import model_card_html  # noqa: E402
from heartml.reports.plots import as_pngs, evaluation_figures  # noqa: E402
from heartml.reports.profile import profile_frame  # noqa: E402
from heartml.reports.tracking import log_evaluation, log_explanations, log_selection, log_shap, log_tuning  # noqa: E402


def train(config: RunConfig, tracking_dir: Path) -> Dict[str, float]:
    """One training run; returns the seconds spent in each stage (named after the pipeline's steps)."""
    seconds: Dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - started

    dataset = config.dataset
    with stage("data_ingestion"):
        shown = display_uri(config.source)
        raw = read_source(config.source, dataset.read_options)
        validate_frame(raw, dataset, shown)
        version = DataVersion.of(raw, shown, dataset.name)
        profile_frame(raw, dataset, shown)
    with stage("data_preprocessing"):
        cleaned, _ = clean_frame(raw, dataset, config.options("data_preprocessing", "cleaning", CleaningOptions))
        train_set, test_set = split_frame(cleaned, dataset, config.options("data_preprocessing", "split", SplitOptions))
        preprocessing = build_preprocessor(
            config.options("data_preprocessing", "preprocessing", PreprocessingOptions), dataset)
    X_train, y_train = features_and_target(train_set, dataset)
    X_test, y_test = features_and_target(test_set, dataset)
    with stage("feature_engineering"):
        feature_pipeline = build_feature_pipeline(
            preprocessing, config.options("feature_engineering", "features", FeatureOptions), dataset)

    with stage("mlflow_setup"):
        mlflow.set_tracking_uri(f"sqlite:///{tracking_dir / 'mlflow.db'}")
        experiment = MlflowClient().create_experiment(
            "training_pipeline", artifact_location=(tracking_dir / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment, run_name="bare_training"):
        with stage("model_building"):
            modeling = config.options("model_building", "modeling", ModelingOptions)
            selection = select_model(X_train, y_train, feature_pipeline, modeling,
                                     on_family_done=lambda candidate: log_tuning(candidate, modeling.scoring))
            comparison = selection.comparison()
            log_selection(comparison, selection.selected, modeling.scoring, modeling.search_settings())
            cv_predictions = selection.cv_predictions(y_train)
            describe_feature_pipeline(selection.model.named_steps["features"])
            outliers_seen(selection.model.named_steps["features"], X_train)
        model = selection.model
        with stage("explain_model"):
            explanations = explain_patients(model, X_train, X_test, dataset,
                                            config.options("explain_model", "explain", ExplainOptions), y_test)
            log_explanations(explanations)
        with stage("explain_with_shap"):
            shap_options = config.options("explain_with_shap", "shap", ShapOptions)
            shap = compare_with_lime(shap_patients(model, X_train, X_test, [p.patient for p in explanations.patients],
                                                   dataset, shap_options), explanations, shap_options.top_features)
            log_shap(shap)
        with stage("model_evaluation"):
            report, proba = evaluate_model(
                model, selection.selected, X_test, y_test, comparison, cv_predictions,
                config.options("model_evaluation", "bootstrap", BootstrapOptions),
                config.options("model_evaluation", "decision_threshold", ThresholdRule),
                dataset.acceptance, selection.calibration.method)
            threshold = report.decision_threshold
            metrics = report.point_estimates()
            with_test = comparison_with_test_metrics(comparison, selection.models, X_test, y_test, threshold)
            class_names = [f"no {dataset.target.column}", dataset.target.column]
            log_evaluation(report, metrics, with_test,
                           as_pngs(evaluation_figures(y_test, proba, report.operating_points, selection.selected,
                                                      class_names, threshold)))
        with stage("quality_gate"):
            if config.parameters("quality_gate").get("enabled", True):
                enforce_quality_gate(report.fitting, report.model_name)
        with stage("register_model"):
            name = (config.raw.get("model") or {})["name"]
            tags = provenance_tags(metrics, model.named_steps["classifier"], version,
                                   training_date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   git_commit=source_commit(ROOT), zenml={})
            registered = register_model_version(model, dataset, X_test.head(5), name, tags, threshold,
                                                training_rows=row_hashes(train_set, dataset.model_features),
                                                reference=drift_reference(train_set, cv_predictions, dataset))
        with stage("promote_model"):
            client = MlflowClient()
            mark_complete(client, name, registered.version)
            advance_staging(client, name, registered.version)
            decision = run_gate(client, name, registered.version, test_set, dataset,
                                config.options("promote_model", "promotion", PromotionPolicy))
        with stage("write_model_card"):
            model_card = build_model_card(
                model, test_set, dataset, version, report, explanations, registered, decision,
                client.get_model_version(name, registered.version).tags,
                IntendedUse(**{k: v for k, v in (config.raw.get("model") or {}).items()
                               if k in IntendedUse.model_fields}),
                config.options("write_model_card", "card", ModelCardOptions), shap)
            mlflow.log_text(model_card_html(model_card), MLFLOW_CARD_PATH)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "training.yaml"))
    parser.add_argument("--source", help="data source URI (default: the config's, else the dataset's)")
    parser.add_argument("--json", help="write the seconds per stage here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    config = RunConfig(Path(args.config), args.source)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bare-training-") as tracking_dir:
        seconds = train(config, Path(tracking_dir))
    total = time.perf_counter() - started
    for name, value in seconds.items():
        print(f"{name:22s} {value:7.2f} s")
    print(f"{'total (after imports)':22s} {total:7.2f} s")
    write_json(args.json, {"stages": seconds, "total_after_imports": total})


if __name__ == "__main__":
    main()
