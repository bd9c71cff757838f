"""Print the workspace's ZenML store as JSON (its last line of output), read in a process of its own:
    python -m tests.reliability.inspect_runs

Every pipeline run, oldest first (status, status reason, each step's status), and every ZenML model version
(its stage and the MLflow version it links to).
"""

from __future__ import annotations

import json


def main() -> None:
    from zenml.client import Client

    client = Client()
    runs = []
    for run in client.list_pipeline_runs(sort_by="asc:created", size=1000, hydrate=True).items:
        steps = client.list_run_steps(pipeline_run_id=run.id, size=1000).items
        runs.append({"id": str(run.id), "name": run.name, "status": run.status.value,
                     "status_reason": run.get_body().status_reason, "steps": {s.name: s.status.value for s in steps}})
    versions = []
    for model in client.list_models(size=100).items:
        for version in client.list_model_versions(model_name_or_id=model.id, size=1000, hydrate=True).items:
            versions.append({"model": model.name, "id": str(version.id), "number": version.number,
                             "stage": version.stage,
                             "mlflow_version": version.run_metadata.get("mlflow_version")})
    print(json.dumps({"runs": runs, "model_versions": versions}))


if __name__ == "__main__":
    main()
