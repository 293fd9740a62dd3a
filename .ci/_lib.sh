# Sourced by .ci/run and the stage scripts: the helpers they share, written once.
PY=${PYTHON:-python3}

# fresh_venv DIR: a new virtual environment with a current pip, activated
fresh_venv() {
    deactivate 2>/dev/null || true
    rm -rf "$1"
    "$PY" -m venv "$1"
    # shellcheck disable=SC1091
    . "$1/bin/activate"
    python -m pip install -q --upgrade pip
}

# tracked_copy DIR: the tracked files of this checkout (what a fresh clone holds, without
# build/ or in-place builds from other stages) copied into DIR
tracked_copy() {
    mkdir -p "$1"
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$1"
}
