#!/usr/bin/env bash
# Install what the test suite needs besides Rust, idempotently:
# - the official OpenAI Python client, in a venv (.venv-test), to check the mock's shapes.
# Prints the environment to export (PERISCOPE_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-test
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<4" >&2
fi
echo "export PERISCOPE_PYTHON=$PWD/$VENV/bin/python"
