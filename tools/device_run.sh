#!/usr/bin/env bash
# Build and check stableloss on a lent many-core machine (AVX-512, 16 threads), then
# measure thread scaling. Usage: bash tools/device_run.sh [OUTDIR]
set -u
OUT=${1:-/tmp/slout}; mkdir -p "$OUT"
W=$(mktemp -d); cp -r . "$W/repo"; cd "$W/repo"
PY=${PYTHON:-python3}
# older setuptools cannot read an SPDX license string or license-files; metadata only
$PY -c "import setuptools,sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" || sed -i '/^license = /d; /^license-files = /d' pyproject.toml
$PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
export PYTHONPATH=src
$PY -c "import stableloss as sl; sl.show_config()" | tee "$OUT/config.txt"
lscpu | grep -iE "model name|^CPU\(s\)|Thread|avx512f" | head -5 | tee -a "$OUT/config.txt"
for p in avx512 avx2 baseline; do
  echo "== STABLELOSS_SIMD=$p"
  STABLELOSS_SIMD=$p $PY -m pytest tests/test_dispatch.py tests/test_accuracy.py tests/test_exact_path.py \
      tests/test_zero_alloc.py -q -p no:cacheprovider -x 2>&1 | tail -2
done | tee "$OUT/tests.txt"
$PY benchmarks/scaling.py 1 4 16 2>&1 | tee "$OUT/scaling.txt"
