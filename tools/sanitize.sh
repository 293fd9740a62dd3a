#!/usr/bin/env bash
# Build the stableloss extension with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the test suite under it.  See docs/reliability.md, "Sanitizers, valgrind and fuzzing".
#
# Usage:  tools/sanitize.sh [pytest arguments...]      (default: the whole tests/ directory)
#
#   PYTHON=/path/to/python    interpreter (default: python3); it need not be instrumented:
#                             libasan is LD_PRELOADed so it is the first DSO loaded
#   SAN_DIR=dir               scratch directory (default: build/sanitize, git-ignored)
#   SAN_EXCLUDE="a.py b.py"   test files to leave out (default: none)
#   SAN_CLEAN=1               rebuild from scratch (default: reuse an up-to-date build)
#
# The working tree's own build is never touched: the tracked (and untracked, not ignored) files
# are copied to $SAN_DIR/tree, built there in place with STABLELOSS_SANITIZE=address
# (setup.py: -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover
# -fno-omit-frame-pointer -g -O1, OpenMP kept), and the copied tests run against that build.
# Every sanitizer report goes to $SAN_DIR/logs/ and aborts the run (halt_on_error);
# the script prints the number of reports and exits non-zero if there is any.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
SAN_DIR=${SAN_DIR:-$ROOT/build/sanitize}
TREE=$SAN_DIR/tree
LOGS=$SAN_DIR/logs

CC_=${CC:-gcc}
LIBASAN=$("$CC_" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then
    echo "sanitize.sh: $CC_ has no libasan.so (install the compiler's sanitizer runtime)" >&2
    exit 2
fi
LIBASAN=$(readlink -f "$LIBASAN")
# libstdc++ is preloaded too: CPython is a C program, so when ASan starts it cannot resolve
# the real __cxa_throw, and the first C++ exception thrown by an uninstrumented library
# (TensorFlow's pybind11 modules) dies in "CHECK failed: ... real___cxa_throw != 0".
LIBSTDCXX=$(readlink -f "$("$CC_" -print-file-name=libstdc++.so)")
PRELOAD="$LIBASAN $LIBSTDCXX"

# the copy is refreshed in place (tar keeps the mtimes, so an unchanged extension is not
# rebuilt); SAN_CLEAN=1 starts from an empty copy
[ "${SAN_CLEAN:-0}" = 1 ] && rm -rf "$TREE"
rm -rf "$LOGS" "$TREE/tests"
mkdir -p "$TREE" "$LOGS"
( cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - -cf - 2>/dev/null ) | tar -xf - -C "$TREE" || { echo "copy failed" >&2; exit 2; }

echo "== building with ASan + UBSan in $TREE"
( cd "$TREE" && STABLELOSS_SANITIZE=address STABLELOSS_FAIL_NO_OPENMP=1 \
    "$PY" setup.py build_ext --inplace -j 1 > "$SAN_DIR/build.log" 2>&1 ) \
    || { tail -30 "$SAN_DIR/build.log"; echo "sanitize.sh: build failed" >&2; exit 2; }
SO=$(ls "$TREE"/src/stableloss/_core/_kernels*.so)
LDD=$(ldd "$SO")
if [[ $LDD != *libasan* || $LDD != *libubsan* ]]; then
    echo "sanitize.sh: $SO is not linked against libasan/libubsan" >&2; exit 2
fi

# detect_leaks=0: CPython (and NumPy) keep allocations alive until exit by design; a leak
# report there says nothing about the extension (leaks are tested by RSS growth instead).
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:\
allocator_may_return_null=1:check_initialization_order=1:strict_init_order=1:\
detect_stack_use_after_return=1:log_path=$LOGS/asan:${SAN_ASAN_EXTRA:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$LOGS/ubsan"
export PYTHONPATH="$TREE/src"
export PYTHONDONTWRITEBYTECODE=1

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(tests -q -p no:cacheprovider)
    for f in ${SAN_EXCLUDE:-}; do args+=(--ignore="tests/$f"); done
fi

echo "== module: $(cd "$TREE" && LD_PRELOAD="$PRELOAD" "$PY" -c \
    'import stableloss._core._kernels as k; print(k.__file__)')"
echo "== running: pytest ${args[*]}  (LD_PRELOAD=$PRELOAD)"
( cd "$TREE" && LD_PRELOAD="$PRELOAD" "$PY" -m pytest "${args[@]}" )
rc=$?

nasan=$(cat "$LOGS"/asan* 2>/dev/null | grep -c "ERROR: AddressSanitizer" || true)
nubsan=$(cat "$LOGS"/ubsan* "$LOGS"/asan* 2>/dev/null | grep -c "runtime error:" || true)
echo "== sanitizer summary: pytest exit $rc; AddressSanitizer reports: $nasan;" \
     "UndefinedBehaviorSanitizer reports: $nubsan (logs: $LOGS)"
for f in "$LOGS"/*; do [ -e "$f" ] && { echo "--- $f"; head -60 "$f"; }; done
if [ "$nasan" -ne 0 ] || [ "$nubsan" -ne 0 ] || [ $rc -ne 0 ]; then exit 1; fi
exit 0
