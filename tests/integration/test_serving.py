"""`python run.py serve` for real (uvicorn, FastAPI, the workspace's MLflow registry): it scores, refuses bad input
with the pipeline's one-line messages, follows a promotion under load without a failed request, requires a token
beyond loopback, keeps patient records out of its console, writes the request log, and survives schemathesis.

The served model is this module's own (`serving_check`): two versions of the shared run's model, registered with
different thresholds so the answers say which one scored them; the shared model's aliases are never moved.
"""

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter

import pandas as pd
import pytest
import requests
import sqlalchemy

from tests.conftest import tracking
from tests.serving import served, serving_config, unseen_patients, without_token

SHARED, MODEL = "heart_failure_classifier", "serving_check"
THRESHOLDS = {"1": 0.5, "2": 0.3}  # version -> registered decision threshold
MARKER_CHOLESTEROL = 417.0  # a value no console line may show


def patients(count: int = 3) -> list:
    from heartml.core.sources import read_source

    return read_source("bundled://heart").drop(columns=["HeartDisease"]).head(count).to_dict("records")


@pytest.fixture(scope="module")
def two_versions(trained_run):
    """serving_check versions 1 (production, threshold 0.5) and 2 (complete, threshold 0.3) of the shared model."""
    import mlflow

    from heartml.registry.model_versions import COMPLETE, STATUS_TAG, THRESHOLD_TAG, version_by_alias

    with tracking(trained_run.summary["mlflow_tracking_uri"]) as client:
        shared = version_by_alias(client, SHARED, "production")
        for version, threshold in THRESHOLDS.items():
            created = mlflow.register_model(f"runs:/{shared.run_id}/model", MODEL,
                                            tags={**shared.tags, THRESHOLD_TAG: str(threshold), STATUS_TAG: COMPLETE})
            assert str(created.version) == version
        client.set_registered_model_alias(MODEL, "production", "1")
        yield client


@pytest.fixture(scope="module")
def server(two_versions, workspace, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    config = serving_config(workspace, folder, model_name=MODEL, follow_interval_seconds=1)
    with served(workspace, config) as running:
        running.folder = folder
        yield running


def test_it_scores_patients_with_the_versions_threshold(server):
    answer = requests.post(f"{server.url}/predict", json={"records": patients(3)}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == MODEL and body["model_version"] == "1" and body["decision_threshold"] == 0.5
    assert len(body["predictions"]) == 3
    for prediction in body["predictions"]:
        assert 0 <= prediction["probability"] <= 1
        assert prediction["predicted_class"] == int(prediction["probability"] >= 0.5)
        assert "explanation" not in prediction
    assert requests.get(f"{server.url}/health", timeout=5).json() == {"status": "ok", "model_version": "1"}
    info = requests.get(f"{server.url}/model", timeout=5).json()
    assert info["alias"] == "production" and info["follow_interval_seconds"] == 1
    assert set(info["features"]) == set(patients(1)[0])


def test_it_agrees_with_the_registered_model(server, two_versions):
    import mlflow

    records = patients(5)
    answer = requests.post(f"{server.url}/predict", json={"records": records}, timeout=30).json()
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(
        pd.DataFrame(records).astype({"Age": float, "RestingBP": float, "Cholesterol": float, "FastingBS": float,
                                      "MaxHR": float, "Oldpeak": float}))
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(list(pd.DataFrame(expected)[1]))


def test_an_impossible_patient_gets_a_400_naming_each_column_and_rule(server):
    impossible = {**patients(1)[0], "Age": 400, "Sex": "X", "RestingBP": -140}
    answer = requests.post(f"{server.url}/predict", json={"records": [impossible]}, timeout=30)
    assert answer.status_code == 400
    assert sorted(answer.json()["detail"]) == [
        "request: column 'Age': rule 'range [1, 120]' failed for 1 row (e.g. 400.0)",
        "request: column 'RestingBP': rule 'range [0, 300]' failed for 1 row (e.g. -140.0)",
        "request: column 'Sex': rule 'one of [M, F]' failed for 1 row (e.g. 'X')",
    ]


@pytest.mark.parametrize("body, line", [
    ({"records": [{k: v for k, v in patients(1)[0].items() if k != "Age"}]},
     "request: record 0: column 'Age': rule 'required column' failed: the field is missing"),
    ({"records": [{**patients(1)[0], "MaxHR": "fast"}]},
     "request: record 0: column 'MaxHR': rule 'float_parsing' failed: Input should be a valid number, unable to "
     "parse string as a number (got 'fast')"),
    ({"records": []}, "request: field 'records': rule 'too_short' failed: List should have at least 1 item after "
                      "validation, not 0 (got '[]')"),
    ({"patients": []}, "request: field 'records': rule 'required column' failed: the field is missing"),
])
def test_a_malformed_body_gets_a_422_in_one_line(server, body, line):
    answer = requests.post(f"{server.url}/predict", json=body, timeout=30)
    assert answer.status_code == 422 and answer.json()["detail"] == [line]


def test_it_explains_a_patient_on_request(server):
    answer = requests.post(f"{server.url}/predict", json={"records": patients(2), "explain": True}, timeout=120)
    assert answer.status_code == 200, answer.text
    for prediction in answer.json()["predictions"]:
        explanation = prediction["explanation"]
        assert set(explanation["values"]) == set(patients(1)[0])
        total = explanation["base_value"] + sum(explanation["values"].values())
        assert total == pytest.approx(prediction["probability"], abs=1e-6)


def test_a_promotion_is_followed_under_load_without_a_failed_request(server, two_versions):
    from heartml.registry.model_versions import version_by_alias

    answers, failures, stop = [], [], threading.Event()

    def client(number: int) -> None:
        """Sequential requests: each one starts after the last one's answer, so its version can never go back."""
        session = requests.Session()
        while not stop.is_set():
            try:
                reply = session.post(f"{server.url}/predict", json={"records": patients(3)}, timeout=30)
                if reply.status_code != 200:
                    failures.append(reply.status_code)
                else:
                    body = reply.json()
                    answers.append((number, time.monotonic(), body["model_version"], body["decision_threshold"]))
            except requests.RequestException as error:
                failures.append(type(error).__name__)

    workers = [threading.Thread(target=client, args=(number,)) for number in range(4)]
    for worker in workers:
        worker.start()
    def answered(number: int, version: str) -> int:
        return sum(1 for n, _, v, _ in list(answers) if n == number and v == version)

    def wait_for(condition, what: str) -> None:  # counts, not seconds: a busy machine answers fewer per second
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline and not failures, f"{what} within 60 s; failures {failures}"
            time.sleep(0.05)

    try:
        wait_for(lambda: all(answered(n, "1") >= 5 for n in range(4)), "5 answers of version 1 to every client")
        two_versions.set_registered_model_alias(MODEL, "production", "2")
        promoted = time.monotonic()
        deadline = promoted + 60
        while requests.get(f"{server.url}/ready", timeout=5).json()["model_version"] != "2":
            assert time.monotonic() < deadline, "version 2 was not served within 60 s"
            time.sleep(0.1)
        taken_up = requests.get(f"{server.url}/model", timeout=5).json()
        wait_for(lambda: all(answered(n, "2") >= 3 for n in range(4)), "3 answers of version 2 to every client")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        two_versions.set_registered_model_alias(MODEL, "production", "1")  # as the other tests expect
    assert failures == []
    for number in range(4):  # per client: version 1, then version 2, never back (requests in flight may overlap)
        versions = [version for n, _, version, _ in answers if n == number]
        assert versions[0] == "1" and versions[-1] == "2", versions
        assert set(versions[versions.index("2"):]) == {"2"}, versions
    first_new = min(at for _, at, version, _ in answers if version == "2")
    assert taken_up["model_version"] == "2" and 0 < taken_up["load_seconds"] < 30, taken_up
    # one interval (1 s) until the check, the check and load of version 2, then a request in flight (< 1 s)
    assert first_new - promoted < 1 + taken_up["load_seconds"] + 1, (first_new - promoted, taken_up)
    assert all(threshold == THRESHOLDS[version] for *_, version, threshold in answers)
    assert version_by_alias(two_versions, MODEL, "production").version in ("1", 1)
    deadline = time.monotonic() + 10  # and back to version 1 for the tests after this one
    while requests.get(f"{server.url}/ready", timeout=5).json()["model_version"] != "1":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_the_request_log_holds_each_scored_patient_and_the_console_none(server):
    marked = {**patients(1)[0], "Cholesterol": MARKER_CHOLESTEROL}
    requests.post(f"{server.url}/predict", json={"records": [marked]}, timeout=30).raise_for_status()
    requests.post(f"{server.url}/predict", json={"records": [{**marked, "Age": 400}]}, timeout=30)
    engine = sqlalchemy.create_engine(f"sqlite:///{server.folder / 'requests.db'}")
    deadline = time.monotonic() + 10
    while True:
        log = pd.read_sql_table("scored_requests", engine)
        rows = log[log["record"].str.contains(str(MARKER_CHOLESTEROL))]
        if len(rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(rows) == 1  # the refused request is not a scored patient
    row = rows.iloc[0]
    assert json.loads(row["record"]) == marked and row["model_name"] == MODEL
    assert 0 <= row["probability"] <= 1 and row["predicted_class"] == int(row["probability"] >= 0.5)
    console = server.output().replace(server.url.split("://")[-1], "")  # its port may hold "417" (CI, 2026-12-05)
    assert "417" not in console and "400" not in console


def test_beyond_loopback_it_refuses_to_start_without_a_token(two_versions, workspace, tmp_path):
    config = serving_config(workspace, tmp_path, model_name=MODEL)
    result = subprocess.run([sys.executable, "run.py", "serve", "--config", str(config), "--host", "0.0.0.0"],
                            cwd=workspace.project, env=without_token(workspace.env), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: serve: host 0.0.0.0 is beyond loopback, so requests need a bearer token: set $HEARTML_SERVE_TOKEN "
        "or the ZenML secret 'heartml-serving' (key token)"]


def test_beyond_loopback_requests_without_the_token_get_a_401(two_versions, workspace, tmp_path):
    token = "test-token-not-a-secret"
    config = serving_config(workspace, tmp_path, model_name=MODEL)
    with served(workspace, config, host="0.0.0.0", env={"HEARTML_SERVE_TOKEN": token}) as server:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = requests.post(f"{server.url}/predict", json={"records": patients(1)}, headers=headers, timeout=30)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
            assert refused.json() == {"detail": ["request: rule 'bearer token' failed: missing or wrong token"]}
        ok = requests.post(f"{server.url}/predict", json={"records": patients(1)},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert ok.status_code == 200
        assert requests.get(f"{server.url}/ready", timeout=5).status_code == 200  # probes need no token
        assert token not in server.output()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Generated requests from the OpenAPI description (positive and negative): never a 5xx."""
    command = [shutil.which("schemathesis") or str(sys.prefix + "/bin/schemathesis"), "run",
               f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "40",
               "--seed", "1", "--phases", "examples,coverage,fuzzing", "--generation-database", "none", "--no-color"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)  # its cache there
    assert result.returncode == 0, result.stdout[-6000:]
    print(result.stdout[-3000:])
    generated = [line for line in result.stdout.splitlines() if "generated" in line.lower()]
    assert generated, result.stdout[-3000:]
    assert Counter(line.split()[0] for line in server.output().splitlines() if line.strip()).get("Traceback") is None


def test_monitor_compares_the_request_log_with_the_training_data(two_versions, workspace, tmp_path):
    """`python run.py monitor` over this server's own request log: new patients like the training ones (the
    version's test split), then a cohort whose cholesterol was never measured."""
    from heartml.core.sources import read_source

    heart = read_source("bundled://heart").drop(columns=["HeartDisease"])
    config = serving_config(workspace, tmp_path, model_name=MODEL)
    monitoring = tmp_path / "monitoring.yaml"
    monitoring.write_text((workspace.project / "configs/monitoring.yaml").read_text())

    def monitor(name: str) -> dict:
        summary = tmp_path / f"{name}.json"
        result = workspace.run("monitor", "--serving-config", str(config), "--config", str(monitoring),
                               "--summary-json", str(summary))
        return {**json.loads(summary.read_text()), "stdout": result.stdout}

    with served(workspace, config) as server:
        like_training = unseen_patients(two_versions, MODEL, "1").to_dict("records")  # the whole test split
        for start in range(0, len(like_training), 50):
            requests.post(f"{server.url}/predict", json={"records": like_training[start:start + 50]},
                          timeout=30).raise_for_status()
        time.sleep(1)  # the request log writes in the background
        quiet = monitor("quiet")
        not_measured = heart[heart["Cholesterol"] == 0].to_dict("records")
        requests.post(f"{server.url}/predict", json={"records": not_measured}, timeout=30).raise_for_status()
        time.sleep(1)
        shifted = monitor("shifted")
    assert quiet["drift_detected"] is False and quiet["retraining_recommended"] is False, quiet["monitoring"]
    assert quiet["monitoring"]["rows"] == len(like_training) and quiet["model"] == {"name": MODEL, "version": "1"}
    # Half the window is the shifted cohort: drift in its missing share; whether retraining is recommended depends
    # on how many features moved (the batch-inference test checks the recommendation on the cohort alone).
    assert shifted["drift_detected"] is True
    assert shifted["monitoring"]["rows"] == len(like_training) + len(not_measured)
    assert "Cholesterol not measured" in shifted["monitoring"]["drifted_columns"]
    assert "Drift:            drift in" in shifted["stdout"]


def test_the_token_may_come_from_a_zenml_secret(two_versions, workspace, zenml_client, tmp_path):
    """Beyond loopback with no $HEARTML_SERVE_TOKEN: the ZenML secret `heartml-serving` (key `token`) is used."""
    token = "token-from-a-zenml-secret"
    secret = zenml_client.create_secret(name="heartml-serving", values={"token": token})
    try:
        config = serving_config(workspace, tmp_path, model_name=MODEL)
        with served(workspace, config, host="0.0.0.0") as server:  # no token in its environment
            body = {"records": patients(1)}
            assert requests.post(f"{server.url}/predict", json=body, timeout=30).status_code == 401
            assert requests.post(f"{server.url}/predict", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert token not in server.output()
    finally:
        zenml_client.delete_secret(secret.id)
