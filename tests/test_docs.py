"""The documentation speaks to a user of the library and points only at what ships.

Checked over README.md, docs/*.md and the user-visible text of the sources, benchmarks and
tools (docstrings and comments):

- no path leaves the repository (``../`` that resolves outside it), and every relative
  markdown link, every repository path (``docs/...``, ``tests/...``, ``src/...``, ...) and
  every test named in the docs exists;
- no project-internal jargon: references to notes that do not ship ("trap 7", "§13", "the
  issue", "the lead's runs", "session", "agents", "worktree", ...);
- every python block of the markdown files is an example the examples run collects
  (``conftest.py`` at the repository root; the run itself is
  ``python -m pytest --doctest-modules --pyargs stableloss README.md docs``).
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CODE_SUFFIXES = {".py", ".pyx", ".pxd", ".h", ".sh", ".toml", ".json", ".cfg", ".in"}


def _code_files(*dirs):
    out = []
    for d in dirs:
        for p in sorted((ROOT / d).rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts:
                continue
            if p.suffix in _CODE_SUFFIXES and not p.name.endswith(".c"):
                out.append(p)
    return out


# user-facing text: what ships and what a user runs
USER_FILES = MARKDOWN + _code_files("src", "benchmarks", "tools")
# every text file a reader of the repository may follow a path from
ALL_FILES = USER_FILES + _code_files("tests", ".ci") + [ROOT / f for f in ("pyproject.toml", "setup.py",
                                                                           "MANIFEST.in", "conftest.py")]


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _lines(p: Path):
    return enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)


def _matches(files, pattern):
    """(file, line number, line, match) for every match of `pattern` in `files`."""
    for p in files:
        for n, line in _lines(p):
            for m in re.finditer(pattern, line):
                yield p, n, line, m


def test_the_scanned_files_are_there():
    # guards the checks below against scanning nothing
    names = {_rel(p) for p in ALL_FILES}
    assert {"README.md", "docs/api.md", "docs/keras.md", "src/stableloss/_api.py",
            "src/stableloss/_core/_kernels.pyx", "benchmarks/compare.py", "tools/sanitize.sh",
            "tests/conftest.py"} <= names


def test_no_path_leaves_the_repository():
    bad = []
    for p, n, _, m in _matches(ALL_FILES, r"(?:\.\./)+[\w./-]*[\w/]"):
        # read from the file's folder or from the repository root: either way the
        # path must name something inside the repository
        if not any((ROOT in t.parents or t == ROOT) and t.exists()
                   for t in ((p.parent / m.group(0)).resolve(), (ROOT / m.group(0)).resolve())):
            bad.append(f"{_rel(p)}:{n}: {m.group(0)}")
    assert not bad, "paths outside the repository (or to nothing):\n" + "\n".join(bad)


_LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def test_relative_markdown_links_resolve():
    bad, seen = [], 0
    for p, n, _, m in _matches(MARKDOWN, _LINK):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URLs and in-page anchors
        seen += 1
        path = (p.parent / target.split("#", 1)[0]).resolve()
        if ROOT not in path.parents or not path.exists():
            bad.append(f"{_rel(p)}:{n}: ({target})")
    assert seen >= 5, "the link pattern found (almost) no links"
    assert not bad, "broken relative links:\n" + "\n".join(bad)


_REPO_PATH = re.compile(r"(?<![\w/.~-])((?:docs|tests|benchmarks|tools|src|\.ci)/[\w./-]*[\w/])")


def test_repository_paths_named_in_the_docs_exist():
    bad, seen = [], 0
    for p, n, line, m in _matches(USER_FILES, _REPO_PATH):
        seen += 1
        if line[m.end():m.end() + 1] == "*":
            continue  # a glob pattern (of build products, say), not a path
        if not (ROOT / m.group(1)).exists():
            bad.append(f"{_rel(p)}:{n}: {m.group(1)}")
    assert seen >= 30
    assert not bad, "paths that are not in the repository:\n" + "\n".join(bad)


def test_tests_named_in_the_docs_exist():
    defined = set()
    for p in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", p.read_text(encoding="utf-8"), re.M))
    bad, seen = [], 0
    for p, n, _, m in _matches(MARKDOWN, r"`(?:[\w/]+\.py::)?\s*(test_\w+)(?![\w.])"):
        seen += 1
        if m.group(1) not in defined:
            bad.append(f"{_rel(p)}:{n}: {m.group(1)}")
    assert seen >= 5
    assert not bad, "tests named in the docs that do not exist:\n" + "\n".join(bad)


# Words that refer to the project's internal notes and process, meaningless to a user.
BANNED = [
    (r"§", "a section of notes that do not ship"),
    (r"\b[Tt]rap \d", "a numbered item of notes that do not ship"),
    (r"\bshared/(?:semantics|performance|prototype|style)", "notes that do not ship"),
    (r"\b(?:the|this|that|performance|accuracy)\s+issue\b|\bissue's\b|\bissue\s*#?\d", "an issue tracker entry"),
    (r"\bthe lead\b|\blead's\b", "a person of the project"),
    (r"\bsessions?\b", "a working session"),
    (r"\bagents?\b|\bagents'", "the project's agents"),
    (r"\bcoordinator\b", "a person of the project"),
    (r"\bworktree", "a git worktree of the developers (say: working tree)"),
    (r"\bsemantics doc\b|\bperformance guide\b", "notes that do not ship"),
]
BANNED_MARKDOWN = [(r"\bhelper\b", "a member of the project")]


def test_no_internal_jargon():
    bad = []
    for p in USER_FILES:
        rules = BANNED + (BANNED_MARKDOWN if p.suffix == ".md" else [])
        for n, line in _lines(p):
            for pat, why in rules:
                m = re.search(pat, line)
                if m:
                    bad.append(f"{_rel(p)}:{n}: {m.group(0)!r} ({why}): {line.strip()[:100]}")
    assert not bad, "internal words in user-facing text:\n" + "\n".join(bad)


def _root_conftest():
    spec = importlib.util.spec_from_file_location("_stableloss_root_conftest", ROOT / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_python_blocks_are_examples():
    """Every python block is collected by the examples run, and shows its output (a doctest),
    so that its printed values are checked."""
    conf = _root_conftest()
    blocks = 0
    bad = []
    for p in MARKDOWN:
        assert conf._is_example_file(p), _rel(p)
        for lineno, lang, code, requires in conf.markdown_blocks(p.read_text(encoding="utf-8")):
            if lang not in conf._LANGS:
                continue
            blocks += 1
            if ">>>" not in code:
                bad.append(f"{_rel(p)}:{lineno}: a python block without >>> prompts shows no output")
            for mod in requires:
                if mod not in {"torch", "tensorflow", "keras"}:
                    bad.append(f"{_rel(p)}:{lineno}: requires {mod!r}, not an optional framework")
    assert blocks >= 6
    assert not bad, "\n".join(bad)


def test_markdown_block_parser():
    conf = _root_conftest()
    text = ("intro\n\n```python\n>>> 1 + 1\n2\n```\n\n<!-- requires: torch, keras -->\n"
            "- item\n\n  ```py\n  x = 1\n  ```\n```bash\nls\n```\n")
    got = list(conf.markdown_blocks(text))
    assert got == [(4, "python", ">>> 1 + 1\n2\n", []), (12, "py", "x = 1\n", []), (15, "bash", "ls\n", [])]
    got = list(conf.markdown_blocks("<!-- requires: torch, keras -->\n```python\n>>> 1\n1\n```\n"))
    assert got == [(3, "python", ">>> 1\n1\n", ["torch", "keras"])]


@pytest.mark.parametrize("shown,ok", [("2", True), ("3", False)])
def test_markdown_examples_compare_output(tmp_path, shown, ok):
    """The collector fails a block whose shown output is not what the code prints, and skips
    a block whose required module is missing."""
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text(encoding="utf-8"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text(
        f"text\n\n```python\n>>> print(1 + 1)\n{shown}\n```\n\n"
        "<!-- requires: no_such_module_here -->\n```python\n>>> raise SystemExit(3)\n```\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "docs"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    summary = r.stdout.strip().splitlines()[-1]
    want = "1 passed, 1 skipped" if ok else "1 failed, 1 skipped"
    assert want in summary, r.stdout + r.stderr
    assert r.returncode == (0 if ok else 1)
    if not ok:
        assert "Expected:\n    3\nGot:\n    2" in r.stdout
