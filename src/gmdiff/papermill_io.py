"""A papermill I/O handler that reads Jupytext notebooks, so that
``papermill notebooks/<chapter>.py out.ipynb`` works on the ``.py`` source directly, and
refuses a parameter the chapter does not declare.

papermill picks a handler by path prefix; the package registers this one (entry-point
group ``papermill.io``) for relative paths under ``notebooks/``, ``./``, ``../`` and for
absolute paths. Anything that is not a Jupytext text file is passed to papermill's own
local handler unchanged.

Unknown parameters. papermill only warns about a parameter that the ``parameters`` cell
does not assign (``-p profil full`` runs the default profile) and offers no hook between
injecting the parameters and running the notebook but its engine. So, when this handler
first reads a notebook, it wraps papermill's default engine in one that refuses, before a
kernel starts or the output is written, a notebook read from Jupytext source that was
given a parameter its ``parameters`` cell does not assign (:func:`check_parameters`).
The error is a :class:`click.UsageError`, which papermill's command line prints as one
sentence (exit status 2). ``--engine nbclient`` runs papermill's engine unwrapped.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import click
import jupytext
import nbformat
from papermill.iorw import LocalHandler

JUPYTEXT_SUFFIXES = {".py", ".md"}


class UnknownParameterError(click.UsageError, ValueError):
    """A notebook was given a parameter its ``parameters`` cell does not assign."""


def declared_parameters(nb: nbformat.NotebookNode) -> list[str] | None:
    """The names the cell tagged ``parameters`` assigns, in order; None without one."""
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            return [
                name.id
                for node in ast.parse(cell.source).body
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for name in ast.walk(node)
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store)
            ]
    return None


def check_parameters(nb: nbformat.NotebookNode) -> None:
    """Raise :class:`UnknownParameterError`, naming them and the declared ones, when the
    parameters papermill injected into ``nb`` include a name its parameters cell lacks."""
    meta = nb.metadata.get("papermill", {})
    declared = declared_parameters(nb)
    unknown = [p for p in meta.get("parameters", {}) if p not in (declared or [])]
    if declared is None or not unknown:
        return
    raise UnknownParameterError(
        f"{meta.get('input_path', 'the notebook')} has no parameter"
        f"{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; its parameters cell "
        f"assigns {', '.join(declared)}"
    )


class CheckedEngine:
    """A papermill engine that runs ``engine`` once :func:`check_parameters` passes on a
    notebook read from Jupytext source; everything else is ``engine``'s."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def execute_notebook(self, nb: nbformat.NotebookNode, kernel_name: str, **kwargs: Any):
        if Path(nb.metadata.papermill.get("input_path") or "").suffix in JUPYTEXT_SUFFIXES:
            check_parameters(nb)
        return self.engine.execute_notebook(nb, kernel_name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def check_parameters_before_execution() -> None:
    """Wrap papermill's default engine in a :class:`CheckedEngine` (once)."""
    from papermill.engines import papermill_engines  # not at import: papermill loads us first

    default = papermill_engines.get_engine(None)
    if not isinstance(default, CheckedEngine):
        papermill_engines.register(None, CheckedEngine(default))


class JupytextHandler(LocalHandler):
    """Read ``.py``/``.md`` notebooks through Jupytext; everything else as papermill does."""

    def read(self, path: str) -> str:
        check_parameters_before_execution()
        if Path(path).suffix in JUPYTEXT_SUFFIXES:
            return nbformat.writes(jupytext.read(path))
        return super().read(path)


handler = JupytextHandler()
