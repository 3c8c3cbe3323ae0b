#!/usr/bin/env bash
# Offline validation of the Kubernetes examples in deploy/ (no cluster; PyPI only, for the venv).
# What it checks: deploy/validate.py's docstring and deploy/README.md. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/deploy-venv
python=${PYTHON:-python3}
# The venv is rebuilt when the pins or the interpreter change, and reused otherwise.
want="$(sha256sum deploy/requirements.txt | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.walfix-stamp" 2>/dev/null)" != "$want" ]; then
  echo "deploy/validate.sh: installing deploy/requirements.txt into $venv"
  rm -rf "$venv"
  mkdir -p target
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r deploy/requirements.txt
  echo "$want" > "$venv/.walfix-stamp"
fi
exec "$venv/bin/python" deploy/validate.py "$@"
