"""A papermill I/O handler that reads Jupytext notebooks, so that
``papermill notebooks/<chapter>.py out.ipynb`` works on the ``.py`` source directly.

papermill picks a handler by path prefix; the package registers this one (entry-point
group ``papermill.io``) for relative paths under ``notebooks/``, ``./``, ``../`` and for
absolute paths. Anything that is not a Jupytext text file is passed to papermill's own
local handler unchanged.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
from papermill.iorw import LocalHandler

JUPYTEXT_SUFFIXES = {".py", ".md"}


class JupytextHandler(LocalHandler):
    """Read ``.py``/``.md`` notebooks through Jupytext; everything else as papermill does."""

    def read(self, path: str) -> str:
        if Path(path).suffix in JUPYTEXT_SUFFIXES:
            return nbformat.writes(jupytext.read(path))
        return super().read(path)


handler = JupytextHandler()
