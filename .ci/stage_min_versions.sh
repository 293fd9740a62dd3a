#!/usr/bin/env bash
# CI stage (c): the oldest versions the metadata allows. Every lower bound in pyproject.toml
# (build requirements, numpy, the test extra) becomes a pin to its oldest series
# (.ci/_pins.py), the extension is built against them without build isolation (NumPy 1.25
# headers, Cython 3.0, setuptools 77) from a clean copy of the tracked files, and the whole
# suite runs against that install. The frameworks (torch, TF) are not installed here: their
# tests skip; the main stage runs them.
#
#   PYTHON=python3.11                    interpreter (default: python3)
#   STABLELOSS_CI_VENV_MIN=dir           the venv, made fresh (default: .ci-venv-min)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/_lib.sh
VENV=${STABLELOSS_CI_VENV_MIN:-.ci-venv-min}
t0=$SECONDS

fresh_venv "$VENV"
mapfile -t PINS < <(python .ci/_pins.py build runtime test)
echo "== stage (c) minimum versions: ${PINS[*]}"
python -m pip install -q "${PINS[@]}"
python -m pip list --format=freeze | grep -iE '^(numpy|cython|setuptools|pytest|hypothesis|mpmath|scipy|threadpoolctl|ml.dtypes)=='

# a clean copy of the tracked files (no build/ or in-place .so from other stages)
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
tracked_copy "$TREE"
export STABLELOSS_FAIL_NO_OPENMP=1
python -m pip install -q --no-build-isolation --no-deps "$TREE"
echo "== stage (c): built and installed in $((SECONDS - t0)) s"

cd "$TREE"          # src/ layout: the installed copy is what `import stableloss` finds
python -c "import stableloss, numpy; assert 'site-packages' in stableloss.__file__, stableloss.__file__; print('stableloss', stableloss.__version__, 'numpy', numpy.__version__)"
python -m pytest -q -p no:cacheprovider
echo "== stage (c): done in $((SECONDS - t0)) s"
