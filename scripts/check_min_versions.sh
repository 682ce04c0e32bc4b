#!/usr/bin/env bash
# The suite against the lowest versions pyproject.toml declares, in a throw-away venv.
#
#   scripts/check_min_versions.sh            # builds the venv in a temp dir, removes it at the end
#
# Installs the package without extras (no torch, no SB3, no matplotlib) with the lower bounds pinned, then
# runs the suite: the tests that need the train extra skip themselves (pytest.importorskip), so what runs
# is the core, the env, the vector env, the oracle, the baselines and the evaluation harness.
# PYTHON (default python3.11) picks the interpreter; UNPINNED=1 installs the newest releases instead of the
# lower bounds (the other end of the declared ranges); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
PINS=("numpy==1.24.*" "scipy==1.10.*" "gymnasium==1.1.*" "numba==0.60.*")
if [[ "${UNPINNED:-0}" == 1 ]]; then PINS=(); fi
TEST_TOOLS=("pytest>=7.4" "hypothesis>=6.80")

venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
start=$SECONDS
"$PYTHON" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The package and the pins in one resolve, so that pip cannot pick newer versions for the package; built
# from a copy of the sources, so that the build leaves nothing in this tree.
src="$(dirname "$venv")/src"
mkdir -p "$src" && cp -r pyproject.toml README.md sdedge_gym agents "$src/"
"$venv/bin/python" -m pip install -q "$src" ${PINS[@]+"${PINS[@]}"} "${TEST_TOOLS[@]}"
"$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(numpy|scipy|gymnasium|numba|llvmlite|pytest|hypothesis) '
installed=$SECONDS
# From the source tree: the sources are the installed ones (a plain `pip install .` of this tree), and the
# tests that read docs/ or scripts/ find them.
OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
echo "install $((installed - start)) s, tests $((SECONDS - installed)) s, total $((SECONDS - start)) s"
