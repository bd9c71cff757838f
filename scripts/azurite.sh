#!/usr/bin/env bash
# Start, stop or inspect Azurite for the azurite stack:  scripts/azurite.sh start|stop|status
# Settings: AZURITE_BLOB_PORT (10000), AZURITE_BLOB_HOST (127.0.0.1), AZURITE_LOCATION (data folder).
# `python run.py --stack azurite` starts it on its own when it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m heartml.platform.azurite "$@"
