"""ZenML steps: thin, typed wrappers over the plain functions in heartml/."""

from heartml.platform import speedups

speedups.apply()  # in every process that runs steps: run.py, or a remote orchestrator's step container
