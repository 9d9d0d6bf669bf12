# Sourced by the scripts beside it and by .ci/run: create .venv and install the project at the versions
# requirements.lock pins (scripts/lock.sh), again whenever pyproject.toml or the lock file changed since the
# last install. By default with the test extras (pytest, the linters, the test servers: what .ci/run and
# scripts/test.sh need); with `venv_extras=none` set before sourcing (scripts/up.sh), the runtime only.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "FileRelay needs python3 3.11 or newer; this python3 is $(python3 -V 2>&1)" >&2
  return 1
fi
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip' 2>/dev/null; then
  echo "python3 cannot create a venv: install python3-venv (sudo apt-get install python3-venv)" >&2
  return 1
fi
_venv_stale() { [ ! -f "$1" ] || [ pyproject.toml -nt "$1" ] || [ requirements.lock -nt "$1" ]; }
if [ "${venv_extras:-test}" = none ]; then
  # A venv with the test extras has the runtime too.
  if [ ! -x .venv/bin/filerelay ] || { _venv_stale .venv/.installed && _venv_stale .venv/.installed-runtime; }; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e . -c requirements.lock
    touch .venv/.installed-runtime
  fi
elif [ ! -x .venv/bin/filerelay ] || [ ! -x .venv/bin/pytest ] || _venv_stale .venv/.installed; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]" -c requirements.lock
  touch .venv/.installed
fi
unset -f _venv_stale
