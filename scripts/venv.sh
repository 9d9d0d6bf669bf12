# Sourced by the scripts beside it and by .ci/run: create .venv and install the project with its test
# extras at the versions requirements.lock pins (scripts/lock.sh), again whenever pyproject.toml or the
# lock file changed since the last install.
if [ ! -x .venv/bin/filerelay ] || [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed ] \
  || [ requirements.lock -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]" -c requirements.lock
  touch .venv/.installed
fi
