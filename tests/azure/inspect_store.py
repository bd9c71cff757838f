"""Read back what a workspace's ZenML store holds, as JSON, in a process of its own (tests keep one store per
process):  python -m tests.azure.inspect_store [RUN_ID ...]

For each run: its stack, and every output artifact's URI, type and a short summary of the loaded value (each
artifact is loaded through the stack's artifact store, i.e. read back from Azurite on the azurite stack).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

import pandas as pd


def summarize_value(value: Any) -> Dict[str, Any]:
    summary: Dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if isinstance(value, pd.DataFrame):
        summary["rows"] = len(value)
    elif isinstance(value, dict) or hasattr(value, "model_dump"):
        fields = value if isinstance(value, dict) else value.model_dump()
        summary["value"] = {k: v for k, v in fields.items() if isinstance(v, (int, float, str))}
    return summary


def main(run_ids: list) -> None:
    from zenml.client import Client

    client = Client()
    result: Dict[str, Any] = {
        "active_stack": client.active_stack_model.name,
        "stacks": sorted(s.name for s in client.list_stacks(size=100).items),
        "secrets": sorted(s.name for s in client.list_secrets(size=100).items),
        "runs": {},
    }
    for run_id in run_ids:
        run = client.get_pipeline_run(run_id)
        artifacts = {}
        for step_name, step in run.steps.items():
            for output_name, versions in step.outputs.items():
                artifact = versions[0]
                artifacts[output_name] = {"step": step_name, "uri": artifact.uri,
                                          **summarize_value(artifact.load())}
        result["runs"][run_id] = {
            "stack": run.stack.name,
            "artifact_store_path": run.stack.components["artifact_store"][0].configuration["path"],
            "step_status": {name: step.status.value for name, step in run.steps.items()},
            "artifacts": artifacts,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
