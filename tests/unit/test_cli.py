"""run.py's command group: every command has help with examples, no command means train, and an option that does
not belong to a command is refused in one line (exit 2) before anything runs."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT))
import run  # noqa: E402

COMMANDS = [["train"], ["promote"], ["predict"], ["ui"], ["ui", "start"], ["ui", "stop"], ["stack"],
            ["stack", "list"], ["stack", "register"], ["stack", "check"], ["azurite"], ["azurite", "start"],
            ["azurite", "stop"], ["azurite", "status"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command):
    result = CliRunner().invoke(run.cli, [*command, "--help"], prog_name="python run.py")
    assert result.exit_code == 0, result.output
    assert f"Usage: python run.py {' '.join(command)}" in result.output


@pytest.mark.parametrize("command", [["train"], ["promote"], ["predict"], ["ui"], ["ui", "start"], ["stack"],
                                     ["stack", "register"], ["stack", "check"], ["azurite"]], ids=" ".join)
def test_commands_that_do_work_show_examples(command):
    result = CliRunner().invoke(run.cli, [*command, "--help"], prog_name="python run.py")
    assert "Examples:" in result.output and f"python run.py {' '.join(command)}" in result.output.split("Examples:")[1]


def test_no_command_is_train_and_stack_help_says_it_changes_the_active_stack():
    group = run.cli.make_context("python run.py", ["--stack", "local", "--no-cache"], resilient_parsing=True)
    assert group.protected_args + group.args == ["train", "--stack", "local", "--no-cache"]
    result = CliRunner().invoke(run.cli, ["train", "--help"], prog_name="python run.py")
    assert "make it your active ZenML stack" in " ".join(result.output.split())


@pytest.mark.parametrize("args, message", [
    (["--dashboard"], "error: No such option '--dashboard'. (see: python run.py train --help)"),
    (["--to", "staging"], "error: No such option '--to'. (see: python run.py train --help)"),
    (["promote", "3", "--to", "production", "--reason", "x", "--no-cache"],
     "error: No such option '--no-cache'. (see: python run.py promote --help)"),
    (["promote", "3", "--to", "production"], "error: Missing option '--reason'. (see: python run.py promote --help)"),
    (["promote", "3", "--to", "production", "--reason", " "],
     "error: Invalid value for --reason: must say why (it is recorded with the promotion) "
     "(see: python run.py promote --help)"),
    (["ui", "start", "--source", "x.csv"], "error: No such option '--source'. (see: python run.py ui start --help)"),
    (["predict", "--dataset", "configs/datasets/heart.yaml"],
     "error: No such option '--dataset'. (see: python run.py predict --help)"),
])
def test_a_misplaced_option_is_one_line_and_exit_2(args, message):
    result = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", message)


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_the_run_config_caches_ingestion_on_the_data_hash_run_py_checked(no_cache):
    """ZenML keys a step's cache on its parameters, and a step's own enable_cache outweighs the run's: so the hash
    goes in as a parameter and caching is turned on for ingestion only without --no-cache."""
    import yaml

    path = run.effective_config(ROOT / "configs" / "training.yaml", {}, no_cache,
                                {"data_ingestion": {"expected_data_hash": "ab12"}}, cached_steps=["data_ingestion"])
    try:
        config = yaml.safe_load(path.read_text())
    finally:
        path.unlink()
    ingestion = config["steps"]["data_ingestion"]
    assert ingestion["parameters"] == {"expected_data_hash": "ab12"}
    assert ingestion.get("enable_cache") is (None if no_cache else True)
    assert config.get("enable_cache") is (False if no_cache else None)
