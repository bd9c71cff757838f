"""What ZenML's local deployer costs per patient: the candidate `python run.py serve` was chosen against.

    python bench/zenml_deployer_latency.py [--calls 20] [--json out.json]

Run in a project whose active stack has a `production` model (train one first: python run.py). It registers a
`local` deployer, a stack `deployer_bench` (the active stack plus that deployer, activated for this run only),
deploys a one-step scoring pipeline (the step validates the patient against the training schema and scores it with
the registered model, loaded once per deployment process) and times `POST /invoke` for one patient. Every call is a
pipeline run in the ZenML store: that fixed cost is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import lru_cache
from typing import Any, Dict, List

import pandas as pd
import requests
from typing_extensions import Annotated
from zenml import pipeline, step

MODEL = "heart_failure_classifier"


@lru_cache(maxsize=1)
def _model(uri: str) -> Any:
    from heartml.registry.model_versions import load_scoring_model, training_dataset

    return load_scoring_model(uri), training_dataset(uri)


@step(enable_cache=False)
def score_patient(record: Dict[str, Any], model_uri: str) -> Annotated[float, "probability"]:
    from heartml.core.validation import validate_records

    model, dataset = _model(model_uri)
    frame = validate_records(pd.DataFrame([record]), dataset, "request")
    return float(model.predict_proba(frame)[0, 1])


@pipeline(enable_cache=False)
def patient_scoring(record: Dict[str, Any], model_uri: str) -> float:
    return score_patient(record=record, model_uri=model_uri)


def measure(calls: int) -> Dict[str, Any]:
    from mlflow.tracking import MlflowClient
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from heartml.core.sources import read_source
    from heartml.platform.zenml_registry import configure_mlflow_from_active_stack
    from heartml.registry.serving import resolve_serving_model

    configure_mlflow_from_active_stack()
    serving = resolve_serving_model(MlflowClient(), MODEL)
    client = Client()
    previous = client.active_stack_model
    if not client.list_stack_components(name="bench_local_deployer", type=StackComponentType.DEPLOYER).items:
        client.create_stack_component("bench_local_deployer", "local", StackComponentType.DEPLOYER, {})
    if not client.list_stacks(name="deployer_bench").items:
        components = {kind: [c.id for c in found] for kind, found in previous.components.items()}
        components[StackComponentType.DEPLOYER] = [client.get_stack_component(StackComponentType.DEPLOYER,
                                                                              "bench_local_deployer").id]
        client.create_stack("deployer_bench", components=components)
    client.activate_stack("deployer_bench")
    record = read_source("bundled://heart").drop(columns=["HeartDisease"]).iloc[0].to_dict()
    record = {k: (float(v) if not isinstance(v, str) else v) for k, v in record.items()}
    try:
        started = time.perf_counter()
        deployment = patient_scoring.deploy(deployment_name="bench-patient-scoring", record=record,
                                            model_uri=serving.uri)
        deploy_seconds = time.perf_counter() - started
        url = deployment.url.rstrip("/")
        latencies: List[float] = []
        for _ in range(calls + 1):  # the first call loads the model
            began = time.perf_counter()
            answer = requests.post(f"{url}/invoke", json={"parameters": {"record": record,
                                                                        "model_uri": serving.uri}}, timeout=120)
            answer.raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
        body = answer.json()
    finally:
        try:  # stops the deployment's server process, then removes it from the store
            client.delete_deployment("bench-patient-scoring", force=True)
        except KeyError:  # deploy failed before it existed
            pass
        client.activate_stack(previous.id)
    steady = sorted(latencies[1:])
    return {"calls": calls, "deploy_seconds": round(deploy_seconds, 1), "first_call_ms": round(latencies[0], 1),
            "p50_ms": round(statistics.median(steady), 1), "max_ms": round(steady[-1], 1),
            "answer_keys": sorted(body)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    from common import write_json  # here: the deployment server imports this module without bench/ on its path

    figure = measure(args.calls)
    print(f"ZenML local deployer: deployed in {figure['deploy_seconds']} s; one patient p50 {figure['p50_ms']} ms, "
          f"max {figure['max_ms']} ms over {figure['calls']} calls (first {figure['first_call_ms']} ms)")
    write_json(args.json, figure)


if __name__ == "__main__":
    main()
