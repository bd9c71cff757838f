"""What an MLflow basic-auth account may do (heartml/registry/access.py), from the server's permission list, and
refusals said in one line."""

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

from heartml.registry.access import _grants_write, check_can_register, mlflow_failure_line

TRAINERS = [{"permission": "MANAGE", "resource_pattern": "*", "resource_type": "experiment"},
            {"permission": "MANAGE", "resource_pattern": "*", "resource_type": "registered_model"}]


@pytest.mark.parametrize("permissions, model, allowed", [
    (TRAINERS, "heart_failure_classifier", True),
    ([{"permission": "EDIT", "resource_pattern": "heart_failure_classifier", "resource_type": "registered_model"}],
     "heart_failure_classifier", True),
    ([{"permission": "EDIT", "resource_pattern": "other_model", "resource_type": "registered_model"}],
     "heart_failure_classifier", False),
    ([{"permission": "READ", "resource_pattern": "*", "resource_type": "registered_model"}],
     "heart_failure_classifier", False),
    ([{"permission": "MANAGE", "resource_pattern": "*", "resource_type": "experiment"}], "m", False),
    ([], "m", False),
])
def test_only_edit_or_manage_on_the_model_lets_an_account_register(permissions, model, allowed):
    assert _grants_write(permissions, "registered_model", model) is allowed


def test_local_stores_are_not_asked():
    check_can_register("sqlite:///nowhere.db", "m", "register")  # no server, nothing to ask, no error


def test_a_refusal_inside_a_failed_step_is_one_line():
    try:
        try:
            raise MlflowException("API request to endpoint /api/2.0/mlflow/model-versions/create failed with error "
                                  "code 403 != 200. Response body: 'Permission denied'", PERMISSION_DENIED)
        except MlflowException as refused:
            raise RuntimeError("Failed to run step `register_model`") from refused
    except RuntimeError as wrapped:
        line = mlflow_failure_line(wrapped)
    assert line.startswith("MLflow server ") and "(403 PERMISSION_DENIED" in line and "\n" not in line
    assert mlflow_failure_line(ValueError("a bug")) is None
