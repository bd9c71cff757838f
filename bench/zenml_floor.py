"""ZenML's own floor under a cached training run: a pipeline of the training pipeline's shape (its eleven steps
and their order, the three registration steps never cached and with the MLflow experiment tracker) whose steps do
nothing, run by a process set up as run.py sets itself up (the same garbage-collection settings), on the stack and
store of the workspace it runs in. bench/overhead.py runs it twice after the cached training run; the second
run, every cacheable step a cache hit, is the floor: what ZenML and MLflow cost before any work of ours (no data
read, no model loaded). A lower bound: the real steps have more outputs.

    python bench/zenml_floor.py [--stack local]     # from the project root of a workspace that has trained once
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from heartml.platform import speedups  # noqa: E402

speedups.apply()
speedups.loading_libraries()

from zenml import pipeline, step  # noqa: E402
from zenml.client import Client  # noqa: E402


@step  # cached on unchanged data, as run.py configures it
def data_ingestion() -> int:
    return 1


@step
def data_preprocessing(raw: int) -> int:
    return raw


@step
def feature_engineering(train: int) -> int:
    return train


@step
def model_building(features: int) -> int:
    return features


@step
def model_evaluation(model: int) -> int:
    return model


@step
def explain_model(model: int) -> int:
    return model


@step
def explain_with_shap(model: int, lime: int) -> int:
    return model + lime


@step
def quality_gate(report: int) -> int:
    return report


@step(experiment_tracker=True, enable_cache=False)
def register_model(model: int, report: int) -> int:
    return model + report


@step(experiment_tracker=True, enable_cache=False)
def promote_model(version: int) -> int:
    return version


@step(experiment_tracker=True, enable_cache=False)
def write_model_card(version: int, decision: int, shap: int) -> int:
    return version + decision + shap


@pipeline
def zenml_floor_pipeline() -> None:
    raw = data_ingestion()
    model = model_building(feature_engineering(data_preprocessing(raw)))
    report = model_evaluation(model)
    shap = explain_with_shap(model, explain_model(model))
    quality_gate(report)
    version = register_model(model, report)
    write_model_card(version, promote_model(version), shap)


if __name__ == "__main__":
    stack = sys.argv[sys.argv.index("--stack") + 1] if "--stack" in sys.argv else "local"
    Client().activate_stack(stack)
    speedups.libraries_loaded()
    print(f"run_id {zenml_floor_pipeline().id}")  # bench/overhead.py reads the run's steps from the store
