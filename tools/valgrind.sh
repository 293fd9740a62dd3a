#!/usr/bin/env bash
# Run a representative subset of the test suite under valgrind memcheck and report the errors
# whose stack passes through the compiled module.  See docs/reliability.md, "Sanitizers,
# valgrind and fuzzing".
#
# Usage:  tools/valgrind.sh [pytest arguments...]
#   default: the core kernel tests (test_accuracy, test_dispatch, test_half and the layout /
#   label / out= part of test_validation) against the working tree's own build (build it first:
#   python setup.py build_ext --inplace; STABLELOSS_DEBUG=1 keeps the debug info that gives
#   the reports file:line frames in the extension).
#
#   PYTHON=/path/to/python    interpreter (default: python3)
#   VG_DIR=dir                logs (default: build/valgrind, git-ignored)
#   VG_TRACK_ORIGINS=yes      --track-origins=yes (about twice as slow)
#
# PYTHONMALLOC=malloc sends every Python allocation through malloc, so memcheck sees them
# (pymalloc's arenas would hide overruns and raise false "uninitialised" reports);
# tools/valgrind-python.supp (and the distribution's python3.supp when present) suppress the
# known reports from CPython itself.  The exit status is 1 when any error record has a
# frame in stableloss's extension (_kernels*.so) or the run fails.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
VG_DIR=${VG_DIR:-$ROOT/build/valgrind}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 2; }
mkdir -p "$VG_DIR"
rm -f "$VG_DIR"/memcheck.*.log

supp=(--suppressions="$ROOT/tools/valgrind-python.supp")
for f in /usr/lib/valgrind/python3.supp /usr/lib/x86_64-linux-gnu/valgrind/python3.supp; do
    [ -e "$f" ] && supp+=(--suppressions="$f")
done

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(tests/test_accuracy.py tests/test_dispatch.py tests/test_half.py tests/test_validation.py
          -k "not test_validation or layout or zero or special or out or label or one_class or float16"
          -q -p no:cacheprovider -x)
fi

cd "$ROOT"
export PYTHONMALLOC=malloc PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
echo "== valgrind $(valgrind --version) memcheck: pytest ${args[*]}"
valgrind --tool=memcheck --error-limit=no --num-callers=40 --leak-check=no \
    --track-origins="${VG_TRACK_ORIGINS:-no}" "${supp[@]}" \
    --log-file="$VG_DIR/memcheck.%p.log" "$PY" -m pytest "${args[@]}"
rc=$?

"$PY" - "$VG_DIR" <<'EOF'
import glob, re, sys
total = ours = 0
summary = []
for path in sorted(glob.glob(sys.argv[1] + "/memcheck.*.log")):
    text = open(path, errors="replace").read()
    m = re.search(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts \(suppressed: (\d+) from (\d+)\)", text)
    if m:
        summary.append(f"{path.rsplit('/', 1)[-1]}: {m.group(0)}")
        total += int(m.group(1))
    # error records: blocks of "==pid== " lines separated by an empty "==pid== " line
    blocks = re.split(r"^==\d+== ?\n", text, flags=re.M)
    for b in blocks:
        if ("_kernels" in b or "stableloss" in b) and re.search(r"(Invalid|uninitialised|Mismatched|"
                                                               r"overlap|free\(\)|Syscall param)", b):
            ours += 1
            print(b)
print("\n".join(summary))
print(f"== valgrind summary: {total} errors in all (after suppressions); "
      f"{ours} error records with a frame in stableloss's extension")
sys.exit(1 if ours else 0)
EOF
prc=$?
echo "== pytest exit status under valgrind: $rc"
[ $rc -eq 0 ] && [ $prc -eq 0 ]
