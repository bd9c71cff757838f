"""heartml.platform.azurite: start when down, reuse when up, refuse a port held by something else, stop by saved pid."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from heartml.platform import azurite as service
from tests.azurite import blob_names
from tests.ports import free_port

pytestmark = pytest.mark.azurite


def test_start_reuse_and_stop(tmp_path):
    endpoint = service.Azurite("127.0.0.1", free_port(), tmp_path / "data")
    try:
        started = service.ensure_running(endpoint)
        pid = service.running_pid(endpoint)
        assert pid and started == (
            f"Azurite was not running: started it (pid {pid}) at http://127.0.0.1:{endpoint.port}/devstoreaccount1; "
            f"its data lives in {endpoint.location} (log: {endpoint.location / 'azurite.log'}); "
            "stop it with `python run.py azurite stop`")
        assert service.ensure_running(endpoint) == (
            f"Azurite is running at {endpoint.blob_endpoint} (data in {endpoint.location})")
        assert service.running_pid(endpoint) == pid  # reused, not started twice
        elsewhere = service.Azurite("127.0.0.1", free_port(), endpoint.location)
        with pytest.raises(service.AzuriteError, match=rf"^the Azurite using {endpoint.location} \(pid {pid}\) "
                                                      rf"listens on port {endpoint.port}, not {elsewhere.port}: "):
            service.ensure_running(elsewhere)  # a second Azurite on the same data folder is refused
        assert service.ensure_container(endpoint.connection_string, "box") is True
        assert service.ensure_container(endpoint.connection_string, "box") is False
        assert blob_names(endpoint, "box") == []
    finally:
        stopped = service.stop(endpoint)
    assert stopped == pid
    assert not endpoint.pid_file.exists() and service.probe("127.0.0.1", endpoint.port) is None
    assert service.stop(endpoint) is None


def test_a_port_held_by_another_program_is_refused(tmp_path):
    class NotAzurite(BaseHTTPRequestHandler):
        server_version, sys_version = "SomethingElse/1.0", ""

        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotAzurite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = service.Azurite("127.0.0.1", server.server_address[1], tmp_path)
        with pytest.raises(service.AzuriteError, match=rf"^127\.0\.0\.1:{endpoint.port} is in use by another program "
                                                      r"\(SomethingElse/1\.0\), not Azurite: stop it or set "
                                                      r"AZURITE_BLOB_PORT to a free port$"):
            service.ensure_running(endpoint)
        assert not endpoint.pid_file.exists()
    finally:
        server.shutdown()


def test_stop_never_kills_a_process_that_is_not_azurite(tmp_path):
    endpoint = service.Azurite("127.0.0.1", free_port(), tmp_path)
    tmp_path.joinpath(service.PID_FILE).write_text(f"{os.getpid()}\n")  # a stale file naming this test process
    assert service.stop(endpoint) is None
    assert not endpoint.pid_file.exists()


def test_settings_from_the_environment(monkeypatch, tmp_path):
    for name in ("AZURITE_BLOB_HOST", "AZURITE_LOCATION", "ZENML_LOCAL_STORES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path))
    monkeypatch.setenv("AZURITE_BLOB_PORT", "10000")
    assert service.from_env() == service.Azurite("127.0.0.1", 10000, tmp_path / "local_stores" / "azurite")
    monkeypatch.setenv("AZURITE_BLOB_PORT", "ten")
    with pytest.raises(service.AzuriteError, match="AZURITE_BLOB_PORT='ten': not a port number"):
        service.from_env()
