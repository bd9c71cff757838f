"""Plain, ZenML-free functions behind the pipeline steps (unit-testable on their own)."""
