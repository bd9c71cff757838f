"""What `python run.py serve` needs from outside the app: its options from configs/serving.yaml, the bearer token
(environment or ZenML secret), and uvicorn."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Optional

from heartml.core.config_files import load_yaml_model
from heartml.core.errors import InputError
from heartml.serving.options import ServeOptions, TokenOptions


def load_serve_options(path: Path, label: str) -> ServeOptions:
    """The options (an empty file: the defaults), or a ConfigError with one line per problem naming the field."""
    return load_yaml_model(path, ServeOptions, "serving configuration", label, empty_means_defaults=True)


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (a host name may resolve beyond this machine)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serving_token(options: TokenOptions, host: str) -> Optional[str]:
    """The bearer token from the environment, else the ZenML secret; required beyond loopback."""
    token = os.environ.get(options.env) or _secret_token(options)
    if not token and not is_loopback(host):
        where = f"${options.env}" + (f" or the ZenML secret '{options.zenml_secret}' (key {options.key})"
                                     if options.zenml_secret else "")
        raise InputError(f"serve: host {host} is beyond loopback, so requests need a bearer token: set {where}")
    return token or None


def _secret_token(options: TokenOptions) -> Optional[str]:
    if not options.zenml_secret:
        return None
    from zenml.client import Client

    try:
        secret = Client().get_secret(options.zenml_secret, allow_partial_name_match=False)
    except KeyError:
        return None
    return secret.secret_values.get(options.key) or None


def run_server(app: Any, options: ServeOptions) -> None:
    """uvicorn in this process until SIGINT / SIGTERM (one worker: the alias follower lives in it)."""
    import uvicorn

    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=options.access_log,
                server_header=False)
