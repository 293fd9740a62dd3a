"""Packaging: the sdist can test itself, the license text travels, the version is written once.

Fast checks evaluate MANIFEST.in with setuptools' own FileList (the class the sdist
command uses) over the source tree; the slow one builds a real sdist and reads the tarball.
They need the source tree (pyproject.toml next to tests/): skipped where the tests run
from somewhere else.
"""
import fnmatch
import importlib.metadata
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
MANIFEST = ROOT / "MANIFEST.in"

pytestmark = pytest.mark.skipif(not PYPROJECT.is_file(), reason="no source tree next to tests/")

# what a test run from an unpacked sdist needs (and what the docs and tools the docs name are)
SHIPPED_DIRS = ("tests", "docs", "benchmarks", "tools")


def _pyproject():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def _source_files():
    """The tree's files: git's tracked files in a checkout, else every file (an unpacked
    sdist holds exactly what its manifest selected)."""
    if (ROOT / ".git").exists():
        try:
            out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                 check=True).stdout.decode()
            return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())
        except (OSError, subprocess.CalledProcessError):
            pass
    return sorted(str(p.relative_to(ROOT)).replace(os.sep, "/") for p in ROOT.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts)


def _manifest_lines():
    return [ln.strip() for ln in MANIFEST.read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def _manifest_selection(monkeypatch):
    egg_info = pytest.importorskip("setuptools.command.egg_info")
    monkeypatch.chdir(ROOT)
    fl = egg_info.FileList()
    for line in _manifest_lines():
        fl.process_template_line(line)
    return {f.replace(os.sep, "/") for f in fl.files}


def test_license_file_exists_and_is_declared():
    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause License" in text
    assert "Copyright (c) 2026, The stableloss developers" in text
    assert "Neither the name of the copyright holder" in text      # clause 3
    proj = _pyproject()["project"]
    assert proj["license"] == "BSD-3-Clause"
    assert proj.get("license-files") == ["LICENSE"]
    # license-files in [project] needs setuptools >= 77 (PEP 639)
    req = _pyproject()["build-system"]["requires"]
    st = [r for r in req if re.match(r"setuptools\b", r)]
    assert st and re.search(r">=\s*(\d+)", st[0]) and int(re.search(r">=\s*(\d+)", st[0]).group(1)) >= 77


def test_manifest_ships_tests_docs_and_license(monkeypatch):
    selected = _manifest_selection(monkeypatch)
    files = _source_files()
    missing = [f for f in files if f.split("/")[0] in SHIPPED_DIRS and f not in selected]
    assert not missing, f"MANIFEST.in leaves out: {missing}"
    for f in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "tests/conftest.py",
              "conftest.py", ".ci/run",
              "tests/_reference.py", "tests/_arrays.py", "tests/_families.py",
              "src/stableloss/_core/_kernels.pyx", "src/stableloss/py.typed"):
        assert f in selected, f
    assert [f for f in files if f.startswith("src/stableloss/_core/include/")]
    assert all(f in selected for f in files if f.startswith("src/stableloss/_core/include/"))
    # no build products
    # (cythonize's C file and annotation HTML under src/; tools/ may hold C sources)
    assert not [f for f in selected if f.endswith((".so", ".pyd", ".pyc"))
                or (f.startswith("src/") and f.endswith((".c", ".html")))
                or f.endswith("_build_config.py")]


def test_manifest_patterns_all_match(monkeypatch):
    """Every include-type pattern in MANIFEST.in names something that exists (a stale
    glob such as the old ``*.pxd`` only hides what the author meant)."""
    monkeypatch.chdir(ROOT)
    files = _source_files()
    dead = []
    for line in _manifest_lines():
        action, *args = shlex.split(line)
        if action == "include":
            dead += [p for p in args if not any(fnmatch.fnmatchcase(f, p) for f in files)]
        elif action == "recursive-include":
            d, pats = args[0].rstrip("/") + "/", args[1:]
            under = [f.rsplit("/", 1)[-1] for f in files if f.startswith(d)]
            dead += [f"{d} {p}" for p in pats if not any(fnmatch.fnmatchcase(b, p) for b in under)]
        elif action == "graft":
            dead += [d for d in args if not (ROOT / d).is_dir()]
    assert not dead, f"MANIFEST.in patterns matching nothing: {dead}"


def test_version_written_once():
    proj = _pyproject()["project"]
    assert "version" not in proj and "version" in proj.get("dynamic", [])
    attr = _pyproject()["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "stableloss._version.__version__"
    vfile = ROOT / "src" / "stableloss" / "_version.py"
    src = vfile.read_text()
    # setuptools reads the attr statically; an import here could pull in the extension
    assert not re.search(r"^\s*(import|from)\s", src, re.M)
    ns = {}
    exec(compile(src, str(vfile), "exec"), ns)
    import stableloss
    assert stableloss.__version__ == ns["__version__"]
    assert stableloss.show_config(print_=False)["version"] == ns["__version__"]
    literal = re.findall(r"""__version__\s*=\s*['"]""", (ROOT / "src/stableloss/__init__.py").read_text())
    assert not literal, "__init__.py must import the version, not write it"


def test_installed_metadata_version():
    """The installed distribution's metadata carries the package's own version (where the
    imported stableloss is an installed one, not a source tree on sys.path)."""
    import stableloss
    try:
        dist = importlib.metadata.distribution("stableloss")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("stableloss is not installed (source tree on sys.path)")
    if dist.read_text("WHEEL") is None:
        pytest.skip("not installed from a wheel (an egg-info left in a source tree)")
    init = pathlib.Path(dist.locate_file("stableloss/__init__.py")).resolve()
    if init != pathlib.Path(stableloss.__file__).resolve():
        pytest.skip("the imported stableloss is not the installed distribution")
    assert importlib.metadata.version("stableloss") == stableloss.__version__
    assert any(str(f).endswith("LICENSE") for f in (dist.files or []))


@pytest.mark.slow
def test_sdist_contents(tmp_path):
    """Build a real sdist (no build isolation: the running environment must have the
    build requirements, else skipped) and read what the tarball holds."""
    for mod in ("build", "setuptools", "Cython", "numpy"):
        pytest.importorskip(mod)
    tree = tmp_path / "tree"      # a copy: the build writes egg-info and C files into its tree
    for f in _source_files():
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tree / f)
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                        "--outdir", str(out), str(tree)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (tar,) = out.glob("stableloss-*.tar.gz")
    with tarfile.open(tar) as t:
        names = t.getnames()
        top = names[0].split("/")[0]
        rel = {n[len(top) + 1:] for n in names if n.startswith(top + "/")}
        pkg_info = t.extractfile(f"{top}/PKG-INFO").read().decode()
    for f in _source_files():
        if f.split("/")[0] in SHIPPED_DIRS or f in ("LICENSE", "MANIFEST.in"):
            assert f in rel, f
    assert not [f for f in rel if f.endswith((".so", ".c", ".pyc")) or f.endswith("_build_config.py")]
    import stableloss
    assert re.search(rf"^Version: {re.escape(stableloss.__version__)}$", pkg_info, re.M)
    assert re.search(r"^License-File: LICENSE$", pkg_info, re.M)
    assert re.search(r"^License-Expression: BSD-3-Clause$", pkg_info, re.M)
