"""pytest plugin: validate each ``notebooks/<name>.py`` (Jupytext source of truth) against
the outputs stored in its executed twin ``notebooks/<name>.ipynb``.

With ``--nbval``, every ``.py`` that has a stored ``.ipynb`` beside it is collected. The
stored notebook's cells must equal the cells Jupytext reads from the ``.py`` (same
order, type and source); otherwise a single item fails with "stale" and the command that
re-executes it. If they match, nbval re-executes the code and compares each cell's
outputs with the stored ones. Stored ``.ipynb`` files are not collected a second time.
A chapter without its ``.ipynb`` (a Jupytext ``.py`` in a ``notebooks`` folder, see
:func:`is_chapter`) is not skipped: a single item fails with "missing".
Enabled from the project's ``conftest.py`` (``pytest_plugins``).

Numeric tolerance. A number that depends on a trained network is not bit-reproducible
across CPUs (AVX2 and AVX512 kernels round float32 differently, and training amplifies
the difference) nor on a GPU. A cell that prints such numbers declares, in a comment,
how far each printed number may move and where that bound was measured::

    # NBVAL_TOLERANCE abs=0.5 rel=0.1  (seed-to-seed sd of FD-digits: 1.9, 5 seeds)

Its outputs are then compared number by number: the text between the numbers must be
identical (runs of white space count as one blank, since a table's column padding follows
the width of its numbers), and each number may differ from the stored one by at most
``abs + rel * |stored|``; a changed label or verdict word still fails. Choose ``abs`` and
``rel`` small enough that the cell's integers (table numbers, step counts) cannot move.
Cells without the marker are compared exactly, as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

TOLERANCE_MARKER = "NBVAL_TOLERANCE"
_TOLERANCE_LINE = re.compile(rf"^\s*#\s*{TOLERANCE_MARKER}\b(?P<spec>.*)$", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Tolerance:
    """How far a printed number may move from the stored one: ``abs + rel * |stored|``."""

    abs: float = 0.0
    rel: float = 0.0

    @classmethod
    def from_source(cls, source: str) -> Tolerance | None:
        """The tolerance a cell declares with ``# NBVAL_TOLERANCE abs=.. rel=..``, or None."""
        match = _TOLERANCE_LINE.search(source)
        if match is None:
            return None
        spec = dict(re.findall(r"\b(abs|rel)=([0-9.eE+-]+)", match["spec"]))
        if not spec:
            raise ValueError(
                f"{TOLERANCE_MARKER} needs abs=<number> and/or rel=<number>, got: {match[0].strip()!r}"
            )
        return cls(**{k: float(v) for k, v in spec.items()})

    def first_violation(self, stored: str, new: str) -> str | None:
        """None if ``new`` agrees with ``stored`` under this tolerance, else why not."""
        if _skeleton(stored) != _skeleton(new):
            return "the text around the numbers differs"
        for ref, got in zip(_NUMBER.findall(stored), _NUMBER.findall(new)):
            bound = self.abs + self.rel * abs(float(ref))
            if abs(float(got) - float(ref)) > bound:
                return f"{got} vs stored {ref} (allowed {bound:.3g})"
        return None


def _skeleton(text: str) -> list[str]:
    """The text between the numbers, with white space runs collapsed to one blank."""
    return [re.sub(r"\s+", " ", part) for part in _NUMBER.split(text)]


class _TolerantText(str):
    """A sanitized output string whose (in)equality is :meth:`Tolerance.first_violation`."""

    tolerance: Tolerance

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.tolerance.first_violation(self, other) is None

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


class ToleranceCell(IPyNbCell):
    """A notebook cell whose numbers are compared within its declared :class:`Tolerance`."""

    def __init__(self, *args, tolerance: Tolerance, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tolerance = tolerance

    def sanitize(self, s):
        s = super().sanitize(s)
        if not isinstance(s, str):
            return s
        text = _TolerantText(s)
        text.tolerance = self.tolerance
        return text

    def compare_outputs(self, test, ref, skip_compare=None) -> bool:
        ok = super().compare_outputs(test, ref, skip_compare)
        if not ok:
            self.comparison_traceback.insert(
                0, f"compared within {TOLERANCE_MARKER} abs={self.tolerance.abs} rel={self.tolerance.rel}"
            )
        return ok


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


class BrokenPair(pytest.Item):
    """Fails, saying why: the stored executed notebook is missing (item "missing") or does
    not correspond to its ``.py`` source (item "stale")."""

    def __init__(self, *, detail: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.detail = detail

    def runtest(self) -> None:
        raise AssertionError(self.detail)

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, 0, f"{self.name} notebook {self.path.name}"


class MissingNotebook(pytest.File):
    """A chapter (see :func:`is_chapter`) without its executed ``.ipynb``: one failing item."""

    def collect(self):
        stored = self.path.with_suffix(".ipynb")
        yield BrokenPair.from_parent(
            self,
            name="missing",
            detail=(
                f"{self.path.name} has no executed notebook {stored.name} beside it, so its "
                f"outputs are not checked; execute it: make notebooks (or papermill "
                f"{self.path} {stored})"
            ),
        )


class JupytextNotebook(IPyNbFile):
    """nbval's notebook collector, reading the code from the ``.py`` and the expected
    outputs from the stored ``.ipynb``."""

    def collect(self):
        source = jupytext.read(self.path)
        stored_path = self.path.with_suffix(".ipynb")
        stored = nbformat.read(stored_path, as_version=4)
        want, have = _cells(source), _cells(stored)
        if want != have:
            first = next(
                (i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have))
            )
            yield BrokenPair.from_parent(
                self,
                name="stale",
                detail=(
                    f"{stored_path.name} does not match {self.path.name} (first difference at "
                    f"cell {first}; {len(want)} cells in the source, {len(have)} stored). "
                    f"Re-execute it: make notebooks (or papermill {self.path} {stored_path})"
                ),
            )
            return
        for cell_src, cell in zip(source.cells, stored.cells):
            cell.source = cell_src.source  # the code that runs is the .py's
        self.nb = stored
        yield from self._items()

    def _items(self):
        # nbval's collect() reads self.fspath itself; reuse its item loop on our notebook.
        nbformat_read = nbformat.read
        try:
            nbformat.read = lambda *a, **k: self.nb
            for item in super().collect():
                tolerance = Tolerance.from_source(item.cell.source)
                if tolerance is not None and item.options["check"]:
                    item = ToleranceCell.from_parent(
                        self, name=item.name, cell_num=item.cell_num, cell=item.cell,
                        options=item.options, tolerance=tolerance,
                    )
                yield item
        finally:
            nbformat.read = nbformat_read


_PERCENT_CELL = re.compile(r"^# %%", re.MULTILINE)


def is_chapter(path: Path) -> bool:
    """A ``.py`` in a folder named ``notebooks`` that is a Jupytext notebook: it opens with
    a ``# ---`` header holding ``jupytext`` metadata or has a ``# %%`` cell line."""
    if path.suffix != ".py" or path.parent.name != "notebooks":
        return False
    text = path.read_text(errors="replace")
    header = text.split("\n# ---", 1)[0] if text.startswith("# ---\n") else ""
    return "jupytext:" in header or _PERCENT_CELL.search(text) is not None


class _NotATestModule(pytest.File):
    """A chapter named on the command line: pytest would import it as a test module, so
    running the whole chapter once more before nbval runs it cell by cell (gmd_samplers:
    two minutes). Its cells are collected by :class:`JupytextNotebook`; this collects
    nothing."""

    def collect(self):
        return []


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    """Never import a chapter as a Python test module (see :class:`_NotATestModule`)."""
    if is_chapter(module_path):
        return _NotATestModule.from_parent(parent, path=module_path)
    return None


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if file_path.suffix == ".py" and file_path.with_suffix(".ipynb").exists():
        return JupytextNotebook.from_parent(parent, path=file_path)
    if is_chapter(file_path):
        return MissingNotebook.from_parent(parent, path=file_path)
    return None


def pytest_ignore_collect(collection_path: Path, config):
    """Stored notebooks are collected through their ``.py``; never on their own."""
    if collection_path.suffix == ".ipynb" and collection_path.with_suffix(".py").exists():
        return True
    return None
