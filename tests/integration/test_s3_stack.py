"""The s3 stack for real: ZenML's S3 artifact store against an S3-compatible server on loopback (moto's server),
with the bucket's keys in a ZenML secret. A training run stores every artifact in the bucket; the key shows up
nowhere in the output or the MLflow tags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import make_workspace
from tests.s3 import s3_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_run(s3_server, tmp_path_factory):  # noqa: F811
    workspace = make_workspace(tmp_path_factory.mktemp("s3-ws"))
    env = dict(workspace.env, AWS_ACCESS_KEY_ID=s3_server.access_key_id,
               AWS_SECRET_ACCESS_KEY=s3_server.secret_access_key, HEARTML_S3_ENDPOINT_URL=s3_server.endpoint_url,
               HEARTML_S3_BUCKET=s3_server.bucket)
    summary = workspace.project / "out" / "s3-summary.json"
    result = subprocess.run([sys.executable, "run.py", "--stack", "s3", "--config", "tests/configs/training-fast.yaml",
                             "--summary-json", str(summary)], cwd=workspace.project, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    code = ("import json, sys; from zenml.client import Client; run = Client().get_pipeline_run(sys.argv[1]); "
            "print(json.dumps({'artifact_store': Client().active_stack_model.components['artifact_store'][0].name, "
            "'uris': [a.uri for s in run.steps.values() for outs in s.outputs.values() for a in outs]}))")
    facts = subprocess.run([sys.executable, "-c", code, json.loads(summary.read_text())["run_id"]],
                           cwd=workspace.project, env=env, capture_output=True, text=True, timeout=300, check=True)
    return result, json.loads(summary.read_text()), json.loads(facts.stdout.strip().splitlines()[-1])


def test_a_training_run_keeps_every_artifact_in_the_bucket(s3_server, s3_run):  # noqa: F811
    result, summary, facts = s3_run
    assert summary["status"] == "completed" and summary["stack"] == "s3"
    assert facts["artifact_store"] == "s3_artifact_store"
    assert len(facts["uris"]) > 20 and all(uri.startswith(f"s3://{s3_server.bucket}/") for uri in facts["uris"])
    stored = set(s3_server.keys())
    prefixes = {uri.removeprefix(f"s3://{s3_server.bucket}/") for uri in facts["uris"]}
    assert all(any(key.startswith(prefix) for key in stored) for prefix in prefixes)  # each one really written


def test_the_bucket_key_stays_in_the_zenml_secret(s3_server, s3_run):  # noqa: F811
    result, summary, _ = s3_run
    assert s3_server.secret_access_key not in result.stdout + result.stderr
    assert "created secret 's3_storage'" in result.stdout
    from mlflow.tracking import MlflowClient

    from tests.secrets_scan import mlflow_values

    client = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"])
    values = list(mlflow_values(client))
    assert values and not [where for where, text in values if s3_server.secret_access_key.encode() in text]
