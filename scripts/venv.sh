#!/usr/bin/env bash
# Make sure VENV is a working virtualenv of PYTHON's version with pip inside; (re)build it when it is
# missing, broken (e.g. made without Debian's python3.X-venv, so without pip) or made by another Python.
#   venv.sh PYTHON VENV
set -u
python=$1 venv=$2
[ -n "$python" ] || exec "$(dirname "$0")/find-python.sh" >/dev/null  # no supported Python: it says so
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
  echo "motcua: $python does not run; choose another with make PYTHON=python3.X" >&2; exit 1; }
case "$version" in
  3.11|3.12|3.13) ;;
  *) echo "motcua supports Python 3.11 to 3.13, and $python is $version: make PYTHON=python3.X" >&2; exit 1 ;;
esac

healthy() {
  [ "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ] \
    && "$venv/bin/python" -m pip --version >/dev/null 2>&1
}

healthy && exit 0
if [ -e "$venv" ]; then
  echo "motcua: $venv is broken or made by another Python; rebuilding it with $python ($version)"
  rm -rf "$venv"
fi
if ! "$python" -m venv "$venv" >/dev/null 2>&1 || ! healthy; then
  rm -rf "$venv"
  echo "motcua: $python cannot make a virtualenv with pip; on Debian: sudo apt-get install python$version-venv" >&2
  exit 1
fi
