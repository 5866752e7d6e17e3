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

Bad values. The same check refuses, before the first cell runs, a value whose kind
differs from its default in the parameters cell (``-p seed abc``: the default 0 is a
whole number; a text default takes text, which ``-r name value`` passes as is), a
``profile`` other than ``ci`` or ``full`` (``-p profile FULL``), a ``data_dir`` or
``dataset`` given while the profile is ``ci`` (which uses shipped or generated data, so it
would be ignored), and a parameter that no other cell of the chapter reads
(:func:`check_values`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import click
import jupytext
import nbformat
from papermill.iorw import LocalHandler

from gmdiff.study import PROFILES

JUPYTEXT_SUFFIXES = {".py", ".md"}


class UnknownParameterError(click.UsageError, ValueError):
    """A notebook was given a parameter its ``parameters`` cell does not assign."""


class BadParameterError(click.UsageError, ValueError):
    """A notebook was given a parameter value it cannot use (see :func:`check_values`)."""


#: The profiles that read shipped or generated data (gmdiff.study: ``long`` is the shipped
#: data at a scale the ci book cannot hold), and the parameters only ``full`` reads.
SHIPPED_DATA = ("ci", "long")
FULL_ONLY = ("data_dir", "dataset")
_NO_DEFAULT = object()


def parameter_defaults(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The literal default of each name the parameters cell assigns (``_NO_DEFAULT`` where
    it is not a literal)."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        if "parameters" not in cell.metadata.get("tags", []):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.Assign):
                pairs = []
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        pairs.append((target, node.value))
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs += zip(target.elts, node.value.elts, strict=False)
            else:
                continue
            for name, value in pairs:
                if isinstance(name, ast.Name):
                    try:
                        out[name.id] = ast.literal_eval(value) if value is not None else None
                    except ValueError:
                        out[name.id] = _NO_DEFAULT
        break
    return out


def _kind_ok(value: Any, default: Any) -> tuple[bool, str]:
    """Whether ``value`` has the kind of ``default``, and that kind in words."""
    if default is _NO_DEFAULT:
        return True, ""
    if isinstance(default, bool):
        return isinstance(value, bool), "True or False"
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), "a whole number"
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool), "a number"
    if isinstance(default, str) or default is None:
        ok = isinstance(value, str) or (default is None and value is None)
        return ok, "text (-r NAME VALUE passes a value as text)"
    return True, ""


def _reads(nb: nbformat.NotebookNode, name: str) -> bool:
    """Whether a code cell other than the parameters cells mentions ``name``."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return any(
        cell.cell_type == "code"
        and not {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", []))
        and pattern.search(cell.source)
        for cell in nb.cells
    )


def check_values(nb: nbformat.NotebookNode) -> None:
    """Raise :class:`BadParameterError` for the first injected parameter that the chapter
    cannot use (module docstring)."""
    meta = nb.metadata.get("papermill", {})
    given = meta.get("parameters", {})
    where = meta.get("input_path", "the notebook")
    defaults = parameter_defaults(nb)
    for name, value in given.items():
        ok, kind = _kind_ok(value, defaults.get(name, _NO_DEFAULT))
        if not ok:
            raise BadParameterError(
                f"{where}: parameter {name} must be {kind}, like its default "
                f"{defaults[name]!r}, got {value!r}"
            )
    profile = given.get("profile", defaults.get("profile"))
    if "profile" in given and profile not in PROFILES:
        raise BadParameterError(
            f"{where}: parameter profile must be one of {list(PROFILES)}, got {profile!r}"
        )
    for name in given:
        if name in FULL_ONLY and profile in SHIPPED_DATA:
            raise BadParameterError(
                f"{where}: parameter {name} is read by the full profile only (profile {profile!r} "
                f"uses shipped or generated data); add -p profile full or drop -p {name}"
            )
        if name in defaults and not _reads(nb, name):
            raise BadParameterError(
                f"{where}: no cell reads parameter {name} (it is declared but unused); "
                f"drop -p {name}"
            )


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
            check_values(nb)
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
