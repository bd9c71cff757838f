"""The registered model guards itself: MLflow's own scoring server, serving the shared run's production model,
refuses an impossible patient with a 400 naming the column and the rule; the model loads, scores and refuses in a
fresh virtual environment built from its own requirements.txt alone (no ZenML, no project checkout)."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import requests

from tests.ports import free_port
from tests.serving import wait_for_http

MODEL = "heart_failure_classifier"
IMPOSSIBLE = {"Age": 400.0, "Sex": "X", "RestingBP": -140.0}


def patients(count: int = 2) -> list:
    from heartml.core.sources import read_source

    frame = read_source("bundled://heart").drop(columns=["HeartDisease"]).head(count)
    # Numbers as the model's signature types them (double): pyfunc refuses to cast int64 columns implicitly.
    return frame.astype({c: "float64" for c in frame.select_dtypes("number").columns}).to_dict("records")


@pytest.fixture(scope="module")
def scoring_server(trained_run, workspace):
    """`mlflow models serve -m models:/NAME@production --env-manager local` on loopback (the venv's bin on PATH, for
    uvicorn), against the shared run's registry."""
    port = free_port()
    env = {**workspace.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": trained_run.summary["mlflow_tracking_uri"]}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@production", "--env-manager",
         "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workspace.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ping", server, "mlflow models serve", lambda: server.stdout.read())
    except AssertionError:
        server.kill()
        raise
    yield url
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def test_mlflow_scoring_server_scores_patients_and_refuses_an_impossible_one_with_a_400(scoring_server):
    good = patients()
    scored = requests.post(f"{scoring_server}/invocations", json={"dataframe_records": good}, timeout=60)
    assert scored.status_code == 200, scored.text[:2000]
    predictions = scored.json()["predictions"]
    assert len(predictions) == 2 and all(abs(sum(p) - 1) < 1e-6 for p in predictions)  # P(no), P(yes) per patient

    refused = requests.post(f"{scoring_server}/invocations", timeout=60,
                            json={"dataframe_records": [{**good[0], **IMPOSSIBLE}]})
    assert refused.status_code == 400, refused.text[:2000]
    body = refused.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    for line in ("request: column 'Age': rule 'range [1, 120]' failed for 1 row (e.g. 400.0)",
                 "request: column 'Sex': rule 'one of [M, F]' failed for 1 row (e.g. 'X')",
                 "request: column 'RestingBP': rule 'range [0, 300]' failed for 1 row (e.g. -140.0)"):
        assert line in body["message"], body["message"][:2000]
    missing = requests.post(f"{scoring_server}/invocations", timeout=60,
                            json={"dataframe_records": [{k: v for k, v in good[0].items() if k != "Age"}]})
    assert missing.status_code == 400 and "Age" in missing.json()["message"]  # MLflow's own signature check


@pytest.mark.slow
def test_the_model_loads_and_guards_itself_in_a_fresh_venv_from_its_own_requirements(trained_run, tmp_path):
    """pip installs the registered model's requirements.txt (from the package index) into an empty venv; a
    process there, outside any checkout, loads the model, scores two patients and refuses the impossible one."""
    import mlflow

    mlflow.set_tracking_uri(trained_run.summary["mlflow_tracking_uri"])
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL}@production",
                                                         dst_path=str(tmp_path / "model")))
    requirements = (model_dir / "requirements.txt").read_text()
    assert "zenml" not in requirements.lower()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                              str(model_dir / "requirements.txt")], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-4000:]
    script = tmp_path / "score.py"
    script.write_text(
        "import json, sys\n"
        "import mlflow, pandas as pd\n"
        "from mlflow.exceptions import MlflowException\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "records = pd.DataFrame(json.loads(sys.argv[2]))\n"
        "proba = model.predict(records)\n"
        "try:\n"
        "    model.predict(records.head(1).assign(**json.loads(sys.argv[3])))\n"
        "    refused = None\n"
        "except MlflowException as exc:\n"
        "    refused = exc.message\n"
        "print(json.dumps({'rows': len(proba), 'refused': refused,\n"
        "                  'zenml': 'zenml' in sys.modules, 'path': sys.path}))\n")
    clean_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = subprocess.run([str(python), str(script), str(model_dir), json.dumps(patients()),
                             json.dumps(IMPOSSIBLE)], cwd=tmp_path, env=clean_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == 2 and not report["zenml"]
    assert not any(str(Path.cwd()) in entry for entry in report["path"] if entry)  # no project checkout in reach
    assert "request: column 'Age': rule 'range [1, 120]'" in report["refused"]
