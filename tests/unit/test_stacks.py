import pytest

from heartml.stacks import STACKS_DIR, load_stack_decl


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
    with pytest.raises(FileNotFoundError, match="declared stacks: .*local"):
        load_stack_decl("nonexistent")
