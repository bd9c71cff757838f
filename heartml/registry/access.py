"""What an account may do on an MLflow server with basic-auth, asked before a run, and its refusals in one line.

MLflow's basic-auth app checks every request; these helpers only ask first, so that an account that may only read
learns it before a training run spends minutes, and say a refusal in one line instead of a traceback.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from mlflow.exceptions import MlflowException, RestException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from heartml.core.errors import InputError

WRITE_PERMISSIONS = {"EDIT", "MANAGE"}
REFUSALS = {"PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401}


class RegistryAccessError(InputError):
    """The MLflow server refuses this account what the command needs (401 or 403)."""

    exit_code = 3


def _grants_write(permissions: Iterable[dict], resource_type: str, resource: str) -> bool:
    return any(p.get("resource_type") == resource_type and p.get("resource_pattern") in ("*", resource)
               and p.get("permission") in WRITE_PERMISSIONS for p in permissions)


def check_can_register(tracking_uri: str, model_name: str, what: str) -> None:
    """Raise RegistryAccessError unless the account may write runs and versions of `model_name` (and move its
    aliases). Servers without basic-auth, and local stores, allow everything."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    credentials = get_default_host_creds(tracking_uri)
    response = http_request(credentials, "/api/3.0/mlflow/users/current/permissions", "GET")
    if response.status_code == 404:  # no auth app on this server
        return
    if response.status_code == 401:
        raise RegistryAccessError(
            f"MLflow server {tracking_uri} refused {what} (401: no valid login): set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an account of that server")
    response.raise_for_status()
    body = response.json()
    if body.get("is_admin"):
        return
    permissions = body.get("permissions", [])
    if not (_grants_write(permissions, "registered_model", model_name)
            and _grants_write(permissions, "experiment", "*")):
        user = credentials.username or "this account"
        raise RegistryAccessError(
            f"MLflow server {tracking_uri}: account {user!r} may not {what} (403: it may only read model "
            f"{model_name!r}); use an account with the trainers role")


def causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it wraps (a failed step wraps the error that stopped it)."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# How MLflow's REST client words a server that did not answer after its retries.
_UNANSWERED = ("Max retries exceeded", "Connection refused", "Connection aborted", "RemoteDisconnected")


def mlflow_failure_line(error: BaseException) -> Optional[str]:
    """One line for an MLflow server that refused the account (401/403) or did not answer, else None."""
    from mlflow import get_tracking_uri

    for cause in causes(error):
        if isinstance(cause, (MlflowException, RestException)) and cause.error_code in REFUSALS:
            status = REFUSALS[cause.error_code]
            reason = "this account may not do this" if status == 403 else "no valid login"
            return (f"MLflow server {get_tracking_uri()} refused the request ({status} {cause.error_code}: "
                    f"{reason}): {str(cause).splitlines()[0][:200]}")
        if isinstance(cause, MlflowException) and any(marker in str(cause) for marker in _UNANSWERED):
            return (f"MLflow server {get_tracking_uri()} did not answer, after retries; the run stopped and "
                    "nothing it registered is served: start the server again, then rerun")
    return None
