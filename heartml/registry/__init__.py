"""The MLflow model registry: versions and their tags, promotion and the champion/challenger gate, serving."""
