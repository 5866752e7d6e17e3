"""pytest plugin: validate each ``notebooks/<name>.py`` (Jupytext source of truth) against
the outputs stored in its executed twin ``notebooks/<name>.ipynb``.

With ``--nbval``, every ``.py`` that has a stored ``.ipynb`` beside it is collected. The
stored notebook's cells must equal the cells Jupytext reads from the ``.py`` (same
order, type and source); otherwise a single item fails with "stale" and the command that
re-executes it. If they match, nbval re-executes the code and compares each cell's
outputs with the stored ones. Stored ``.ipynb`` files are not collected a second time.
Enabled from the project's ``conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval.plugin import IPyNbFile


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


class StaleNotebook(pytest.Item):
    """Fails: the stored executed notebook does not correspond to its ``.py`` source."""

    def __init__(self, *, detail: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.detail = detail

    def runtest(self) -> None:
        raise AssertionError(self.detail)

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, 0, f"stale notebook {self.path.name}"


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
            yield StaleNotebook.from_parent(
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
            yield from super().collect()
        finally:
            nbformat.read = nbformat_read


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if file_path.suffix == ".py" and file_path.with_suffix(".ipynb").exists():
        return JupytextNotebook.from_parent(parent, path=file_path)
    return None


def pytest_ignore_collect(collection_path: Path, config):
    """Stored notebooks are collected through their ``.py``; never on their own."""
    if collection_path.suffix == ".ipynb" and collection_path.with_suffix(".py").exists():
        return True
    return None
