#!/usr/bin/env bash
# Installs what calogen needs on a fresh machine: the Python packages, calogen itself (editable) and, for the browser
# test, Chromium.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements.txt
# calogen itself, editable: the `calogen` command and `python -m calogen` then work from any folder and use this
# checkout's models/ and data/ (no build isolation, so nothing more is downloaded).
python3 -m pip install -q -e . --no-deps --no-build-isolation
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup.sh: could not install chromium; the browser test will be skipped" >&2
fi
