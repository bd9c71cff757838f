"""The ZenML- and MLflow-free core: what a registered model carries (heartml/registry/model_versions.py)."""
