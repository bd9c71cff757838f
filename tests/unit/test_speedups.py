"""heartml/platform/speedups.py in processes of their own: the package index is read once, cyclic collection is off
while a command loads its libraries and back on (with those objects frozen) afterwards, and exit collects nothing."""

import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_collection_is_off_while_loading_and_frozen_objects_are_skipped_after():
    out = run_python("""
        import gc
        from heartml.platform import speedups
        speedups.loading_libraries()
        print(gc.isenabled())
        import sklearn.base  # noqa: F401  (a library's worth of objects)
        speedups.libraries_loaded()
        print(gc.isenabled(), gc.get_freeze_count() > 10_000)
    """)
    assert out.split() == ["False", "True", "True"]


def test_exit_runs_the_atexit_handlers_and_collects_no_cycle():
    # A cycle whose finalizer would print at the interpreter's last collection; atexit handlers still run.
    code = """
        import atexit, gc
        from heartml.platform import speedups
        class Node:
            def __del__(self):
                print("collected at exit", flush=True)
        atexit.register(print, "atexit ran", flush=True)
        {apply}
        gc.collect()
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
    """
    assert run_python(code.format(apply="speedups.apply()")).split("\n")[0] == "atexit ran"
    assert "collected at exit" not in run_python(code.format(apply="speedups.apply()"))
    assert "collected at exit" in run_python(code.format(apply="pass"))  # what the interpreter does without it


def test_the_package_index_is_computed_once_per_process_for_zenml_and_mlflow():
    out = run_python("""
        import importlib.metadata, importlib_metadata
        from heartml.platform import speedups
        speedups.apply(); speedups.apply()
        first = importlib.metadata.packages_distributions()
        print(importlib.metadata.packages_distributions() is first, "sklearn" in first,
              importlib_metadata.packages_distributions() is first)  # the backport MLflow's log_model asks
    """)
    assert out.split() == ["True", "True", "True"]


def test_the_package_index_is_the_librarys_without_statting_every_listed_file():
    out = run_python("""
        import importlib.metadata, os
        import importlib_metadata  # its finder replaces the standard library's, as once MLflow is imported
        from heartml.platform import speedups
        real_stat, stats = os.stat, []
        os.stat = lambda *args, **kwargs: stats.append(args[0]) or real_stat(*args, **kwargs)
        ours = speedups.package_index()
        ours_stats = len(stats)
        library = importlib.metadata.packages_distributions()
        names = all(speedups._distribution_name(d) == d.metadata["Name"] for d in importlib.metadata.distributions())
        print(ours == library, len(ours) > 100, ours_stats, len(stats) - ours_stats > 10_000, names)
    """)
    equal, many, ours_stats, library_stats, names = out.split()
    assert (equal, many, library_stats, names) == ("True", "True", "True", "True")
    assert int(ours_stats) < 1_000  # directory listings, not one per installed file


def test_importing_run_py_leaves_collection_alone_and_running_it_pauses_it():
    assert run_python("import gc, run; print(gc.isenabled())").split() == ["True"]  # tests and scripts import it
    out = run_python("""
        import gc, runpy, sys
        import click
        sys.argv = ["run.py", "stack", "list"]  # the group is invoked; the stub below runs no command
        seen = []
        click.Group.invoke = lambda self, ctx: seen.append(gc.isenabled())
        runpy.run_path("run.py", run_name="__main__")
        print(seen)
    """)
    assert out.split() == ["[False]"]


def test_compiling_a_pipeline_leaves_the_azure_sdk_to_the_connector_registry():
    code = """
        import sys
        from heartml.platform import speedups
        {apply}
        from zenml.integrations.registry import integration_registry
        integration_registry.activate_integrations()  # what compiling a pipeline does
        print("azure.storage.blob" in sys.modules)
        from zenml.service_connectors.service_connector_registry import service_connector_registry
        print(service_connector_registry.is_registered("azure"), "azure.storage.blob" in sys.modules)
    """
    assert run_python(code.format(apply="speedups.apply()")).split() == ["False", "True", "True"]
    assert run_python(code.format(apply="pass")).split()[0] == "True"  # what ZenML does without it
