# The base image of every container step: Python 3.11 with the project's pinned requirements (ZenML, MLflow,
# the Azure packages, scikit-learn, XGBoost, ...). No project code: ZenML adds it on top (build route) or
# downloads it from the artifact store when the step starts (HEARTML_PARENT_IMAGE route).
# Without Docker on your machine, let Azure build it:
#   az acr build --registry <name> --image heartml-base:<tag> --file docker/heartml-base.Dockerfile .
FROM python:3.11-slim
# libgomp1: the OpenMP runtime XGBoost's wheel links against.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check "pip==26.3" \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && pip check
ENV ZENML_ANALYTICS_OPT_IN=false MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/opt/matplotlib
# Matplotlib's font cache, built once here: every step container would otherwise build it at start (2-4 s).
RUN python -c "import matplotlib.pyplot"
WORKDIR /app
