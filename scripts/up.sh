#!/usr/bin/env bash
# Run FileRelay on its embedded defaults: SQLite, local staging and an embedded broker under ./var.
# Needs python3 (3.11+) with venv (Debian/Ubuntu: python3-venv); it installs the runtime only, none of the
# test extras. Extra arguments go to `filerelay up` (e.g. --port 9090 --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
venv_extras=none
source scripts/venv.sh
export FILERELAY_CONFIG="${FILERELAY_CONFIG:-examples/demo.yaml}"
# The demo's folder destination writes to $FILERELAY_HOME/out, the one folder root it allows.
export FILERELAY_HOME="${FILERELAY_HOME:-$PWD/var}"
export FILERELAY_FOLDER_ROOTS="${FILERELAY_FOLDER_ROOTS:-$FILERELAY_HOME/out}"
exec .venv/bin/filerelay up "$@"
