#!/usr/bin/env bash
# Installs what the tests need outside Python, only when it is missing:
#   - Debian chromium + chromium-driver (browser tests; selenium never downloads a driver)
#   - Azurite from package-lock.json into node_modules (a real Azure Blob endpoint on 127.0.0.1)
#   - MariaDB (the team ZenML server's database) and PostgreSQL (the team MLflow server's), Debian packages; the
#     team stack starts its own instances (`python run.py stack up team`), never the system services
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  echo "Installing chromium and chromium-driver (apt)..."
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null
fi

packages=()
{ command -v mariadbd || [ -x /usr/sbin/mariadbd ]; } >/dev/null 2>&1 || packages+=(mariadb-server)
{ command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; } >/dev/null 2>&1 || packages+=(postgresql)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "Installing ${packages[*]} (apt)..."
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/azurite-blob ]; then
  echo "Installing Azurite (npm ci)..."
  npm ci --no-audit --no-fund --silent
fi
