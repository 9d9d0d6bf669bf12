#!/usr/bin/env bash
# Run the test suite. Installs the project with its test extras into .venv; starts Redis if it is not
# running (installing Debian's redis-server first when run as root, as .ci/run does).
# FILERELAY_TEST_DATABASE_URL=postgresql+psycopg://... runs it against PostgreSQL instead of SQLite (a server
# you run; .ci/run installs and starts one).
# Extra arguments go to pytest (e.g. -k archivelink, -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# The integration tests need Redis (the delivery queues); SeaweedFS they start themselves.
if ! (command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1); then
  if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || true
  fi
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  else
    echo "Redis is not running on 127.0.0.1:6379 and redis-server is not installed (sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi
# The console's browser tests drive Debian's Chromium; without it (and no root to install it) they skip.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium: the browser tests will be skipped" >&2
fi
# The azure_blob tests run against Azurite (npm); without npm they skip.
if ! command -v azurite-blob >/dev/null && command -v npm >/dev/null; then
  npm install -g --silent azurite@3 >/dev/null 2>&1 || echo "could not install azurite: the azure_blob tests will be skipped" >&2
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
