"""What goes into the step image (configs/docker.yaml, build route), checked without Docker: ZenML's settings,
requirement gathering and build-context selection, on this repository."""

import re

import pytest
from zenml.config import DockerSettings
from zenml.image_builders.build_context import BuildContext
from zenml.utils.pipeline_docker_image_builder import PipelineDockerImageBuilder

from heartml.platform.declarations import ROOT, docker_settings


def test_base_image_installs_the_pinned_requirements_on_python_311():
    settings = DockerSettings.model_validate(docker_settings())
    dockerfile = (ROOT / settings.dockerfile).read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "COPY requirements.txt /tmp/requirements.txt" in dockerfile
    assert re.search(r"pip install [^\n]*-r /tmp/requirements\.txt", dockerfile)
    assert 'requires-python = ">=3.11,<3.12"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.usefixtures("source_root_is_the_checkout")
def test_zenml_adds_the_code_on_top_and_installs_nothing_else():
    """Through ZenML's public settings and requirement gathering: no second install over the pinned base image,
    the code inside the image, offline defaults in its environment."""
    settings = DockerSettings.model_validate(docker_settings())
    requirements = PipelineDockerImageBuilder.gather_requirements_files(settings, stack=None, log=False)
    assert requirements == []  # the stack's integrations are pinned in requirements.txt, in the base image
    assert not settings.install_stack_requirements and settings.disable_automatic_requirements_detection
    assert settings.requirements is None and not settings.required_integrations
    assert settings.allow_including_files_in_images and not settings.allow_download_from_artifact_store
    assert settings.environment["ZENML_ANALYTICS_OPT_IN"] == "false"


def test_build_context_holds_code_and_configs_but_no_local_state():
    settings = DockerSettings.model_validate(docker_settings())
    dockerignore = str(ROOT / settings.build_config.dockerignore)
    assert settings.parent_image_build_config.dockerignore == settings.build_config.dockerignore
    files = set(BuildContext(root=str(ROOT), dockerignore_file=dockerignore).get_files())
    assert {"run.py", "requirements.txt", "pipelines/training.py", "heartml/platform/stacks.py",
            "steps/model_building.py",
            "configs/training.yaml", "configs/stacks/azure.yaml"} <= files
    for excluded in (".venv/", "node_modules/", ".git/", "mlruns/", "__pycache__/"):
        assert not any(path.startswith(excluded) or f"/{excluded}" in path for path in files), excluded
    assert not any(path.endswith((".pyc", ".db")) for path in files)
