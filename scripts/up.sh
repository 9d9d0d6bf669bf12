#!/usr/bin/env bash
# Run FileRelay on its embedded defaults: SQLite, local staging and an embedded broker under ./var.
# Needs only python3 (3.11+). Extra arguments go to `filerelay up` (e.g. --port 9090 --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
export FILERELAY_CONFIG="${FILERELAY_CONFIG:-examples/demo.yaml}"
exec .venv/bin/filerelay up "$@"
