"""The cloud boundary inside each step process of the executed Azure ML job (tests/azure/execute_azureml_job.py puts
this folder on PYTHONPATH). Python imports it at start-up. It refuses, and records, every connection beyond this
machine, and replaces the two calls the steps make that would leave it: `JobOperations.get` (ZenML's orchestrator
reads the pipeline job's Studio URL in the first step) and the Azure ML model registry's
`ModelOperations.create_or_update` (a version promoted on the azure stack is registered there). Each record is one
JSON line in $HEARTML_STEP_BOUNDARY_LOG. A container's file system is its own: ZenML's entrypoint works in the
image's /app (it downloads and unpacks the code there), which here is the node's own folder, $HEARTML_CONTAINER_APP,
so nodes running at once never share it (nor touch this machine's /app)."""

import ipaddress
import json
import os
import socket
from pathlib import Path

_LOG = os.environ.get("HEARTML_STEP_BOUNDARY_LOG")
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _record(entry):
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def _is_local(host):
    if not isinstance(host, str):
        return True
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local(host):
        _record({"outbound": f"connect {address}", "step_pid": os.getpid()})
        raise ConnectionRefusedError(f"executed Azure ML job: no network beyond loopback ({address})")
    return _connect(sock, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_local(name):
        _record({"outbound": f"dns {name}", "step_pid": os.getpid()})
        raise socket.gaierror(socket.EAI_NONAME, f"executed Azure ML job: no DNS beyond loopback ({name})")
    return _getaddrinfo(host, *args, **kwargs)


def _register_model(self, model, **kwargs):  # cloud boundary: would upload the files and PUT the model asset
    files = sorted(str(p.relative_to(model.path)) for p in Path(model.path).rglob("*") if p.is_file())
    _record({"workspace_model": {"type": model.type, "name": model.name, "version": model.version,
                                 "tags": dict(model.tags or {}), "files": files}})
    return model


def _get_job(self, name, **kwargs):  # cloud boundary: would GET the job from Azure ML; it answers with its page
    from types import SimpleNamespace

    _record({"job_lookup": name})
    studio = f"https://ml.azure.com/runs/{name}"
    return SimpleNamespace(name=name, status="Running", studio_url=studio,
                           services={"Studio": SimpleNamespace(endpoint=studio)})


class _PatchOnImport:
    """Replace the two calls once azure.ai.ml.operations is imported (not before: a step that never talks to Azure
    ML should not pay for importing azure-ai-ml)."""

    def find_spec(self, name, path=None, target=None):
        if name != "azure.ai.ml.operations":
            return None
        import importlib.util
        import sys

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            module.ModelOperations.create_or_update = _register_model
            module.JobOperations.get = _get_job

        loader.exec_module = exec_module
        return spec


_APP = os.environ.get("HEARTML_CONTAINER_APP")
_chdir, _makedirs = os.chdir, os.makedirs


def _in_container(path):
    return _APP if _APP and os.fspath(path) == "/app" else path


def _container_chdir(path):
    return _chdir(_in_container(path))


def _container_makedirs(name, *args, **kwargs):
    return _makedirs(_in_container(name), *args, **kwargs)


if _LOG:
    os.chdir, os.makedirs = _container_chdir, _container_makedirs
    socket.socket.connect = _guarded_connect
    socket.getaddrinfo = _guarded_getaddrinfo
    import sys as _sys

    _sys.meta_path.insert(0, _PatchOnImport())
