"""`python run.py serve` as a user starts it, in a test workspace, until the test is done."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional

import requests
import yaml

from tests.ports import free_port


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for_http(url: str, process: subprocess.Popen, what: str, output=lambda: "", timeout: float = 180) -> None:
    """Until GET `url` answers 200; fails with `output()` when `process` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start (exit {process.poll()}):\n{output()[-4000:]}")
        time.sleep(0.3)


def serving_config(workspace, folder: Path, **options) -> Path:
    """configs/serving.yaml with `options` merged in (request log in `folder`)."""
    config = yaml.safe_load((workspace.project / "configs/serving.yaml").read_text())
    config["request_log"]["url"] = f"sqlite:///{folder / 'requests.db'}"
    for key, value in options.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    path = folder / "serving.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def without_token(env: Dict[str, str]) -> Dict[str, str]:
    """A developer's own $HEARTML_SERVE_TOKEN stays out: a test passes the token it means."""
    return {k: v for k, v in env.items() if k != "HEARTML_SERVE_TOKEN"}


@contextmanager
def served(workspace, config: Path, *args: str, env: Optional[Dict[str, str]] = None,
           host: str = "127.0.0.1") -> Iterator[Server]:
    port = free_port()
    log = config.with_suffix(f".{port}.log")
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--config", str(config), "--port", str(port), "--host", host, *args],
            cwd=workspace.project, env={**without_token(workspace.env), **(env or {})}, stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        wait_for_http(f"{server.url}/ready", process, "run.py serve", server.output)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def unseen_patients(client, name: str, version: str):
    """The bundled heart.csv patients that `version` was not trained on (its test split), without the outcome:
    new patients, as a served model meets them (its probabilities on training rows are sharper than on new ones)."""
    from heartml.core.preprocessing import clean_records
    from heartml.core.sources import read_source
    from heartml.core.versioning import row_hashes
    from heartml.registry.model_versions import training_dataset, training_row_hashes

    spec = training_dataset(f"models:/{name}/{version}")
    heart = read_source("bundled://heart")
    seen = set(training_row_hashes(client.get_model_version(name, version)).tolist())
    hashes = row_hashes(clean_records(heart, spec), spec.model_features)
    return heart[[int(h) not in seen for h in hashes]].drop(columns=[spec.target.column]).reset_index(drop=True)
