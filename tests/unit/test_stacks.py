import re

import pytest
import yaml

from heartml.core.errors import InputError
from heartml.platform.declarations import STACKS_DIR, load_stack_decl, merge_defaults, missing_settings, run_settings


def test_local_stack_declares_mlflow_tracker_and_registry():
    decl = load_stack_decl("local")
    assert decl.name == "local"
    flavors = {kind: c.flavor for kind, c in decl.components.items()}
    assert flavors == {"orchestrator": "local", "artifact_store": "local",
                       "experiment_tracker": "mlflow", "model_registry": "mlflow"}


def test_environment_variables_are_expanded(tmp_path, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ncomponents:\n  orchestrator:\n    name: o\n    flavor: local\n"
                    "    configuration: {a: '${SUB_ID}', b: '${UNSET_VAR:-fallback}'}\n")
    monkeypatch.setenv("SUB_ID", "1234")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    assert load_stack_decl(str(path)).components["orchestrator"].configuration == {"a": "1234", "b": "fallback"}


def test_unknown_stack_lists_the_declared_ones():
    assert (STACKS_DIR / "local.yaml").is_file()
    with pytest.raises(InputError, match="declared stacks: .*local"):
        load_stack_decl("nonexistent")


# --- azurite and azure declarations -------------------------------------------------------------------------

AZURE_VARIABLES = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AZURE_CONTAINER_REGISTRY",
                   "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_CONTAINER", "MLFLOW_TRACKING_URI",
                   "MLFLOW_TRACKING_TOKEN", "AZUREML_STEP_OPERATOR", "AZUREML_COMPUTE_NAME", "HEARTML_PARENT_IMAGE",
                   "AZURITE_BLOB_PORT", "AZURITE_BLOB_HOST", "AZURITE_CONNECTION_STRING", "AZURITE_CONTAINER")


@pytest.fixture
def no_azure_env(monkeypatch):
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_local_azurite_and_s3_share_the_orchestrator_and_the_mlflow_components(no_azure_env):
    local = load_stack_decl("local")
    for other in (load_stack_decl("azurite"), load_stack_decl("s3")):
        for kind in ("orchestrator", "experiment_tracker", "model_registry"):
            assert local.components[kind] == other.components[kind], (other.name, kind)
    assert local.components["experiment_tracker"].configuration["tracking_uri"].startswith("sqlite:///")


def test_mlflow_database_follows_the_zenml_config_folder(no_azure_env, tmp_path):
    from zenml.utils.io_utils import get_global_config_directory

    no_azure_env.setenv("ZENML_CONFIG_PATH", str(tmp_path))
    no_azure_env.delenv("ZENML_LOCAL_STORES_PATH", raising=False)
    uri = load_stack_decl("local").components["experiment_tracker"].configuration["tracking_uri"]
    assert uri == f"sqlite:///{get_global_config_directory()}/local_stores/mlflow/mlflow.db"


def test_azurite_stack_keeps_its_connection_string_in_a_zenml_secret(no_azure_env):
    no_azure_env.setenv("AZURITE_BLOB_PORT", "41234")
    decl = load_stack_decl("azurite")
    store = decl.components["artifact_store"]
    assert (store.flavor, store.configuration) == ("azure", {"path": "az://zenml-artifacts",
                                                             "authentication_secret": "azurite_storage"})
    connection_string = decl.secrets["azurite_storage"]["connection_string"]
    assert "BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1;" in connection_string
    assert decl.services == ["azurite"] and decl.unset_variables == []
    assert run_settings(decl) == {"execution_mode": "fail_fast"}  # local orchestrator: no images, no step operator
    assert "execution_mode" not in run_settings(load_stack_decl("azure"))  # AzureML has no fail_fast


def test_azure_stack_declares_every_component_with_values_from_the_environment(no_azure_env):
    no_azure_env.setenv("AZURE_SUBSCRIPTION_ID", "sub-1")
    no_azure_env.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    decl = load_stack_decl("azure")
    flavors = {kind: c.flavor for kind, c in decl.enabled_components.items()}
    assert flavors == {"orchestrator": "azureml", "artifact_store": "azure", "container_registry": "azure",
                       "image_builder": "local", "experiment_tracker": "mlflow", "model_registry": "mlflow"}
    orchestrator = decl.components["orchestrator"].configuration
    assert orchestrator["subscription_id"] == "sub-1"
    assert (orchestrator["mode"], orchestrator["compute_name"], orchestrator["size"]) == \
        ("compute-cluster", "heartml-cpu", "Standard_DS3_v2")
    tracker = decl.components["experiment_tracker"].configuration
    assert tracker["tracking_token"] == "{{mlflow_remote.token}}" and decl.secrets["mlflow_remote"] == {"token": "tok"}
    assert decl.components["artifact_store"].configuration["authentication_secret"] in decl.secrets


def test_no_credential_is_written_in_a_stack_file():
    for path in STACKS_DIR.glob("*.yaml"):
        text = path.read_text()
        assert "AccountKey" not in text and "SharedAccessSignature" not in text, path
        decl = yaml.safe_load(text)
        for secret in (decl.get("secrets") or {}).values():
            assert all(re.fullmatch(r"\$\{\w+\}", value) for value in secret.values()), path


def test_missing_settings_name_each_variable_once_in_plain_words(no_azure_env):
    decl = load_stack_decl("azure")
    problems = missing_settings(decl)
    assert [p.split(" ")[0] for p in problems] == [
        "AZURE_STORAGE_CONNECTION_STRING", "MLFLOW_TRACKING_TOKEN", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP",
        "AZUREML_WORKSPACE", "AZURE_CONTAINER_REGISTRY", "MLFLOW_TRACKING_URI"]
    assert problems[2] == ("AZURE_SUBSCRIPTION_ID is not set: the orchestrator 'azureml_orchestrator' needs it as "
                           "subscription_id.")
    # An existing ZenML secret covers its variable; an enabled step operator adds itself as a user.
    no_azure_env.setenv("AZUREML_STEP_OPERATOR", "true")
    problems = missing_settings(load_stack_decl("azure"), existing_secrets={"mlflow_remote"})
    assert not any(p.startswith("MLFLOW_TRACKING_TOKEN") for p in problems)
    assert "the step operator 'azureml_trainer' needs it as subscription_id" in problems[1]


def test_the_step_operator_is_optional_and_trains_the_model(no_azure_env):
    assert "step_operator" not in load_stack_decl("azure").enabled_components
    assert "steps" not in run_settings(load_stack_decl("azure"))
    no_azure_env.setenv("AZUREML_STEP_OPERATOR", "true")
    assert run_settings(load_stack_decl("azure"))["steps"] == {"model_building": {"step_operator": "azureml_trainer"}}


def test_docker_route_follows_the_parent_image_variable(no_azure_env):
    from zenml.config import DockerSettings

    build = run_settings(load_stack_decl("azure"))["settings"]["docker"]
    settings = DockerSettings.model_validate(build)
    assert settings.dockerfile == "docker/heartml-base.Dockerfile" and not settings.skip_build
    assert not settings.install_stack_requirements
    assert not settings.allow_download_from_artifact_store and settings.allow_including_files_in_images
    no_azure_env.setenv("HEARTML_PARENT_IMAGE", "myacr.azurecr.io/heartml-base:1")
    prebuilt = DockerSettings.model_validate(run_settings(load_stack_decl("azure"))["settings"]["docker"])
    assert (prebuilt.parent_image, prebuilt.skip_build, prebuilt.allow_download_from_artifact_store) == \
        ("myacr.azurecr.io/heartml-base:1", True, True)


def test_run_configuration_wins_over_stack_defaults():
    defaults = {"settings": {"docker": {"skip_build": True, "parent_image": "a"}}, "steps": {"m": {"x": 1}}}
    config = {"settings": {"docker": {"parent_image": "b"}}, "steps": {"m": {"y": 2}}, "run_name": "r"}
    assert merge_defaults(config, defaults) == {
        "settings": {"docker": {"skip_build": True, "parent_image": "b"}}, "steps": {"m": {"x": 1, "y": 2}},
        "run_name": "r"}
