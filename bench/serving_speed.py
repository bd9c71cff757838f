"""Online scoring: `python run.py serve` against MLflow's own scoring server on the same model, with locust.

    python bench/serving_speed.py [--seconds 15] [--users 8] [--json out.json]

Run in a project whose active ZenML stack has a `production` model (train one first: python run.py). Both servers
serve that version on loopback, one after the other, and both validate every patient against the training schema
(ours before scoring, MLflow's through the record guard inside the model). For each: one user sending one patient
(latency p50 / p99), one user sending 100 patients, then `--users` users sending one patient each (throughput).
Locust (headless, FastHttpUser, no wait) is the load generator; its figures are the server's answer times as the
client sees them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List

import requests
from common import ROOT, write_json
from measure import load_average, machine

from heartml.core.sources import read_source

TARGETS = {"p50_ms_1": 15.0, "p99_ms_1": 60.0}  # one patient, 2 cores; throughput: at least MLflow's
LOCUSTFILE = Path(__file__).with_name("locust_serving.py")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(command: List[str], ready_path: str, port: int, env: Dict[str, str]) -> Iterator[str]:
    process = subprocess.Popen(command, cwd=Path.cwd(), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                if requests.get(url + ready_path, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:4]} did not start (exit {process.poll()})")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def locust(url: str, api: str, patients: int, users: int, seconds: int, records: Path, folder: Path) -> Dict:
    prefix = folder / f"{api}-{patients}-{users}"
    env = {**os.environ, "BENCH_API": api, "BENCH_PATIENTS": str(patients), "BENCH_RECORDS": str(records)}
    subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url, "-u",
                    str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix), "--only-summary",
                    "--loglevel", "WARNING"], env=env, check=True, capture_output=True, text=True)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return {"patients": patients, "users": users, "requests": int(total["Request Count"]),
            "failures": int(total["Failure Count"]), "p50_ms": float(total["50%"]), "p99_ms": float(total["99%"]),
            "requests_per_s": float(total["Requests/s"]),
            "patients_per_s": float(total["Requests/s"]) * patients}


def measure(seconds: int, users: int, name: str = "heart_failure_classifier") -> Dict[str, Any]:
    frame = read_source("bundled://heart").drop(columns=["HeartDisease"]).head(100)
    records = frame.astype({c: "float64" for c in frame.select_dtypes("number").columns}).to_dict("records")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    results: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        folder = Path(scratch)
        body = folder / "records.json"
        body.write_text(json.dumps(records))
        config = folder / "serving.yaml"
        config.write_text((ROOT / "configs/serving.yaml").read_text().replace(
            "sqlite:///serving/requests.db", f"sqlite:///{folder / 'requests.db'}"))
        from heartml.platform.zenml_registry import configure_mlflow_from_active_stack

        tracking = configure_mlflow_from_active_stack()
        port = free_port()
        servers = {
            "heartml": ([sys.executable, "run.py", "serve", "--config", str(config), "--port", str(port)], "/ready"),
            "mlflow": ([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@production",
                        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], "/ping"),
        }
        for api, (command, ready) in servers.items():
            with server(command, ready, port, {**env, "MLFLOW_TRACKING_URI": tracking}) as url:
                runs = [locust(url, api, patients, count, seconds, body, folder)
                        for patients, count in ((1, 1), (100, 1), (1, users))]
            results[api] = {"one_patient": runs[0], "hundred_patients": runs[1], "concurrent": runs[2]}
            print(f"{api}: 1 patient p50 {runs[0]['p50_ms']:.0f} ms p99 {runs[0]['p99_ms']:.0f} ms; 100 patients p50 "
                  f"{runs[1]['p50_ms']:.0f} ms p99 {runs[1]['p99_ms']:.0f} ms; {users} users "
                  f"{runs[2]['requests_per_s']:.0f} requests/s, failures {sum(r['failures'] for r in runs)}",
                  flush=True)
    ours, theirs = results["heartml"], results["mlflow"]
    met = {"p50_ms_1": ours["one_patient"]["p50_ms"] <= TARGETS["p50_ms_1"],
           "p99_ms_1": ours["one_patient"]["p99_ms"] <= TARGETS["p99_ms_1"],
           "throughput": ours["concurrent"]["requests_per_s"] >= theirs["concurrent"]["requests_per_s"]}
    return {"machine": machine(), "load_average": load_average(), "seconds": seconds, "users": users,
            "results": results, "targets": TARGETS, "met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figure = measure(args.seconds, args.users)
    print(json.dumps(figure["met"]))
    if args.json:
        write_json(args.json, figure)
    sys.exit(0 if all(figure["met"].values()) else 1)


if __name__ == "__main__":
    main()
