"""Static typing of the public API.

- ``mypy --strict`` on a user's script (tests/typing/user_script.py) that calls the core,
  the torch mirror and a Keras loss class: no errors, and every ``reveal_type`` there shows
  the type its ``# R:`` comment names (an ndarray / NumPy float / tuple, never ``Any``);
- ``pyright --verifytypes stableloss --ignoreexternal``: type completeness >= 90 %;
- the stub of the compiled module (_core/_kernels.pyi) names the module's functions with
  their parameters.

The mypy and pyright checks skip when the tool is not installed (or pyright cannot start
offline). stableloss is analysed as an installed package is: its own internals' errors are
not the user's (mypy's follow_imports=silent for stableloss.*).
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import pathlib
import re
import shutil
import site
import subprocess
import sys

import pytest

import stableloss
from stableloss._core import _kernels

HERE = pathlib.Path(__file__).parent
SCRIPT = HERE / "typing" / "user_script.py"
PKG_DIR = pathlib.Path(stableloss.__file__).parent
ROOT = PKG_DIR.parent          # the directory stableloss is imported from (src/ or site-packages)

_NDARRAY = "numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]"
_FLOATING = "numpy.floating[Any]"


def _env():
    env = dict(os.environ)
    site_dirs = {os.path.realpath(p) for p in site.getsitepackages() + [site.getusersitepackages()]}
    if os.path.realpath(ROOT) not in site_dirs:
        # a source tree (PYTHONPATH=src): where the checkers find this stableloss
        env["MYPYPATH"] = str(ROOT)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _expected_reveals():
    """{line: expected type} from the script's ``reveal_type(...)  # R: <type>`` lines."""
    out = {}
    for i, line in enumerate(SCRIPT.read_text().splitlines(), 1):
        m = re.search(r"reveal_type\(.*#\s*R:\s*(.+?)\s*$", line)
        if m:
            out[i] = m.group(1)
    return out


def _short(t):
    """mypy's revealed type with the float array / scalar types written 'ndarray' / 'floating'."""
    return t.replace(_NDARRAY, "ndarray").replace(_FLOATING, "floating")


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    tmp = tmp_path_factory.mktemp("mypy")
    cfg = tmp / "mypy.ini"
    cfg.write_text("[mypy]\n[mypy-stableloss.*]\nfollow_imports = silent\n")
    cmd = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(cfg), "--cache-dir", str(tmp / "cache"),
           "--python-executable", sys.executable, "--show-error-codes", "--no-color-output", "--no-pretty",
           str(SCRIPT)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=str(tmp), timeout=900)
    return r


def test_mypy_strict_user_script_is_clean(mypy_run):
    out = mypy_run.stdout + mypy_run.stderr
    errors = [ln for ln in out.splitlines() if ": error:" in ln]
    assert not errors, "\n".join(errors)
    assert mypy_run.returncode == 0, out


def test_mypy_revealed_types(mypy_run):
    out = mypy_run.stdout
    got = {}
    for ln in out.splitlines():
        m = re.match(r".*user_script\.py:(\d+): note: Revealed type is \"(.*)\"$", ln)
        if m:
            got[int(m.group(1))] = _short(m.group(2))
    expected = _expected_reveals()
    assert len(expected) >= 12
    assert set(got) == set(expected), (sorted(got), sorted(expected), out)
    for line, want in expected.items():
        assert "Any" not in got[line].replace("[Any]", ""), (line, got[line])
        assert got[line] == want, f"user_script.py:{line}: revealed {got[line]!r}, expected {want!r}"


def _pyright():
    exe = shutil.which("pyright")
    if exe is None:
        pytest.skip("pyright is not installed")
    try:   # the PyPI wrapper fetches node and the pyright package on first use: no network, no pyright
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("pyright cannot start")
    if v.returncode != 0 or "pyright" not in v.stdout.lower():
        pytest.skip(f"pyright cannot start (offline?): {v.stdout[-200:]} {v.stderr[-200:]}")
    return exe


def test_pyright_verifytypes_completeness(tmp_path):
    exe = _pyright()
    r = subprocess.run([exe, "--pythonpath", sys.executable, "--verifytypes", "stableloss", "--ignoreexternal",
                        "--outputjson"], capture_output=True, text=True, env=_env(), cwd=str(tmp_path), timeout=900)
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no JSON report: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    tc = report["typeCompleteness"]
    assert tc["packageName"] == "stableloss"
    # the package pyright analysed is the one imported here
    assert os.path.realpath(tc["moduleRootDirectory"]) == os.path.realpath(PKG_DIR), tc["moduleRootDirectory"]
    score = tc["completenessScore"]
    unknown = [s["name"] for s in tc.get("symbols", []) if s.get("isExported") and not s.get("isTypeKnown")]
    assert score >= 0.90, f"type completeness {score:.1%}; exported symbols of unknown type: {unknown[:40]}"


def _stub_functions():
    tree = ast.parse((PKG_DIR / "_core" / "_kernels.pyi").read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    consts = {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return funcs, consts


def test_kernels_stub_matches_the_compiled_module():
    funcs, consts = _stub_functions()
    compiled = {n for n, v in vars(_kernels).items()
                if callable(v) and not n.startswith("__") and getattr(v, "__module__", "") == _kernels.__name__}
    assert compiled == set(funcs), (sorted(compiled ^ set(funcs)))
    public_consts = {n for n, v in vars(_kernels).items() if n.isupper() and isinstance(v, (int, tuple))}
    assert public_consts == consts, sorted(public_consts ^ consts)
    for name, node in funcs.items():
        sig = inspect.signature(getattr(_kernels, name))
        a = node.args
        names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
        assert names == list(sig.parameters), (name, names, list(sig.parameters))
        stub_defaults = [ast.literal_eval(d) for d in a.defaults]
        rt_defaults = [p.default for p in sig.parameters.values() if p.default is not p.empty]
        assert stub_defaults == rt_defaults, (name, stub_defaults, rt_defaults)
