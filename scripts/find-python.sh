#!/usr/bin/env bash
# Print the path of a Python that motcua supports (3.11 to 3.13), one way for the Makefile and CI.
#   find-python.sh           the first that runs of python3.11, python3.12, python3.13
#   find-python.sh 3.13      that version only
# Looks on the PATH first, then in pyenv's versions (whose shims are on the PATH but refuse to run a
# version that is not selected). A candidate counts only if it runs and says the version it is named for.
set -u
SUPPORTED=(3.11 3.12 3.13)
wanted=("${@:-${SUPPORTED[@]}}")

where() {  # interpreter version -> the real executable (not a shim), if it runs as that version
  "$1" -c 'import sys; print(sys.executable) if "%d.%d" % sys.version_info[:2] == sys.argv[1] else exit(1)' "$2" 2>/dev/null
}

for version in "${wanted[@]}"; do
  candidates=()
  found=$(command -v "python$version" 2>/dev/null) && candidates+=("$found")
  root=${PYENV_ROOT:-$HOME/.pyenv}
  for dir in $(ls -d "$root/versions/$version".* 2>/dev/null | sort -rV); do
    candidates+=("$dir/bin/python$version")
  done
  for candidate in ${candidates[@]+"${candidates[@]}"}; do
    where "$candidate" "$version" && exit 0
  done
done
echo "motcua: no Python ${wanted[*]} found; install one (Debian: apt-get install python3 python3-venv)" >&2
exit 1
