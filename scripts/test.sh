#!/usr/bin/env bash
# Run the test suite. Installs what it needs into .venv; starts Redis if it is not running.
# FILERELAY_TEST_DATABASE_URL=postgresql+psycopg://... runs it against PostgreSQL instead of SQLite.
# Extra arguments go to pytest (e.g. -k archivelink, -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch .venv/.installed
fi
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a broken suite, not a green one" >&2
  exit 1
fi
exit "$code"
