"""Batch inference throughput: the inference pipeline's predict step function against a bare `predict_proba`.

    python bench/inference_speed.py --input records.parquet [--rounds 6] [--json out.json]

Both score the same records (as `load_records` reads them) with the same registered model, the `production`
version of the active ZenML stack's MLflow registry (train one first: python run.py):
- step: what `steps.batch_inference.batch_predict` runs, `heartml.registry.serving.predict_records` (probabilities, the
  class at the version's threshold, the labelled output with every input column);
- bare: `predict_proba(records)` of the same loaded model.
Loading the model is done once, outside the timing. Every round runs both, which one first alternating (the second
of a pair is ~10% faster: warm caches, memory already held); the median round of each is reported.
Validation of the records is timed too (the load step runs it, once), but it is not part of either figure.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict

from common import write_json
from measure import compare, load_average
from mlflow.tracking import MlflowClient

from heartml.core.sources import read_source
from heartml.core.validation import validate_records
from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
from heartml.registry.model_versions import PRODUCTION, load_scoring_model
from heartml.registry.serving import predict_records, resolve_serving_model

TARGET_RATIO = 0.8


def measure(input_uri: str, rounds: int = 6, name: str = "heart_failure_classifier",
            alias: str = PRODUCTION) -> Dict[str, Any]:
    configure_mlflow_from_active_stack()
    serving = resolve_serving_model(MlflowClient(), name, alias)
    model = load_scoring_model(serving.uri)
    records = read_source(input_uri, serving.dataset.read_options)
    rows = len(records)

    started = time.perf_counter()
    validate_records(records, serving.dataset, input_uri)
    validation_seconds = time.perf_counter() - started

    print(f"{rows} records, model {serving.name} version {serving.version}, load average {load_average()} before")
    timed = compare(rounds, rows, lambda: model.predict_proba(records),
                    lambda: predict_records(records, model, serving, source=input_uri, pipeline_run="bench"),
                    names=("bare", "step"))
    figure = {
        "rows": rows, "model_version": serving.version, "classifier": type(model[-1]).__name__,
        "rounds": rounds, "bare_rows_per_second": round(timed.reference_per_second),
        "step_rows_per_second": round(timed.ours_per_second), "ratio": round(timed.ratio, 3),
        "target_ratio": TARGET_RATIO, "validation_rows_per_second": round(rows / validation_seconds),
        "load_before": timed.load_before, "load_after": timed.load_after,
    }
    print(f"median: bare predict_proba {figure['bare_rows_per_second']:,} rows/s, predict step "
          f"{figure['step_rows_per_second']:,} rows/s: ratio {figure['ratio']:.2f} (validation in the load step: "
          f"{figure['validation_rows_per_second']:,} rows/s); load average {figure['load_after']:.2f} after")
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="records to score (CSV/Parquet path or any source URI)")
    parser.add_argument("--rounds", type=int, default=6, help="an even number: each goes first as often")
    parser.add_argument("--model", default="heart_failure_classifier", help="registered model name")
    parser.add_argument("--alias", default=PRODUCTION)
    parser.add_argument("--json", help="write the figure here")
    args = parser.parse_args()
    write_json(args.json, measure(args.input, args.rounds, args.model, args.alias))


if __name__ == "__main__":
    main()
