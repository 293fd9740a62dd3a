"""Runs the code examples of README.md and docs/*.md under pytest.

Every fenced ```python (or ```pycon) block of those files is one test item, run in
the order of the file with one namespace per file (a block may use the names an earlier
block of the same file defined):

- a block written as an interactive session (``>>>`` prompts) runs as a doctest: each
  printed value must equal the output shown under its prompt (ELLIPSIS enabled);
- any other python block is executed and must not raise.

A block that needs an optional framework says so on the line just before its fence, e.g.
``<!-- requires: torch -->`` or ``<!-- requires: tensorflow, keras -->``; it is skipped
when one of those modules cannot be imported. Nothing else can switch a block off.

Run all examples (docstrings included) with the command given in README.md, section
"Building", or one file with ``python -m pytest README.md`` / ``python -m pytest docs/torch.md``.
"""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
_LANGS = {"python", "py", "pycon"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
_REQUIRES = re.compile(r"^\s*<!--\s*requires:\s*(?P<mods>[\w.,\s]+?)\s*-->\s*$")
_FLAGS = doctest.ELLIPSIS


def markdown_blocks(text: str):
    """Yield ``(lineno, lang, code, requires)`` for every fenced code block of `text`:
    `lineno` is the 1-based line of the block's first code line, `code` is dedented by the
    fence's indentation, `requires` the modules named by a ``<!-- requires: ... -->`` line
    right before the fence."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m["indent"], m["ticks"], m["lang"].lower()
        j = i + 1
        body = []
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(ticks[0] * len(ticks)) and not stripped.strip(ticks[0]):
                break
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        requires: list[str] = []
        k = i - 1
        while k >= 0 and lines[k].strip():
            r = _REQUIRES.match(lines[k])
            if r:
                requires += [s.strip() for s in r["mods"].split(",") if s.strip()]
            k -= 1
        yield i + 2, lang, "\n".join(body) + "\n", requires
        i = j + 1


def _is_example_file(path: Path) -> bool:
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return path.suffix == ".md" and (rel == Path("README.md") or rel.parts[0] == "docs")


def pytest_collect_file(file_path, parent):
    if _is_example_file(file_path):
        return MarkdownFile.from_parent(parent, path=file_path)
    return None


class MarkdownExampleFailure(Exception):
    pass


class MarkdownFile(pytest.File):
    def collect(self):
        namespace: dict = {"__name__": "__main__"}
        text = self.path.read_text(encoding="utf-8")
        for lineno, lang, code, requires in markdown_blocks(text):
            if lang not in _LANGS:
                continue
            yield MarkdownExample.from_parent(self, name=f"line {lineno}", lineno=lineno, code=code,
                                              requires=requires, namespace=namespace)


class MarkdownExample(pytest.Item):
    def __init__(self, *, lineno, code, requires, namespace, **kwargs):
        super().__init__(**kwargs)
        self.lineno, self.code, self.requires, self.namespace = lineno, code, requires, namespace

    def runtest(self):
        for mod in self.requires:
            pytest.importorskip(mod)
        import numpy as np

        with np.printoptions():  # an example that changes print options does not leak them
            if ">>>" in self.code:
                self._run_doctest()
            else:
                # padded so that tracebacks give the line numbers of the markdown file
                code = "\n" * (self.lineno - 1) + self.code
                exec(compile(code, str(self.path), "exec"), self.namespace)

    def _run_doctest(self):
        test = doctest.DocTestParser().get_doctest(self.code, self.namespace, self.name, str(self.path),
                                                   self.lineno - 1)
        runner = doctest.DocTestRunner(optionflags=_FLAGS)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        self.namespace.update(test.globs)  # DocTest works on a copy
        if runner.failures:
            raise MarkdownExampleFailure("".join(report))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MarkdownExampleFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.lineno - 1, f"{self.path.name}, example at line {self.lineno}"
