"""Plain functions behind the pipeline steps, in layers that import downward only (checked by import-linter):

- `heartml.core`: data, validation, preprocessing, features, modeling, tuning, evaluation, explanations. Imports
  neither ZenML nor MLflow; it is the only code a registered model carries.
- `heartml.registry`: the MLflow model registry (versions, promotion, serving). ZenML-free.
- `heartml.reports`: HTML pages, figures, the model card, MLflow logging of reports. ZenML-free.
- `heartml.platform`: ZenML stacks, Azure and Azurite, the dashboard, reliability, run preflight.
"""
