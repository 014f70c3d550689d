#!/usr/bin/env bash
# Installs what calogen needs on a fresh machine: the Python packages and, for the browser test, Chromium.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements.txt
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup.sh: could not install chromium; the browser test will be skipped" >&2
fi
