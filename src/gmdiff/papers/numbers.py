"""The papers' printed numbers, in one format with one loader.

Every number a chapter sets beside ours is typed once, in ``papers/numbers/<paper>.yaml``:
a *table* (``columns`` + ``rows``, read as a :class:`pandas.DataFrame`) or a set of *facts*
(a mapping of named values, lists read as tuples). Each entry says where in the paper it
comes from (``source``). Nothing here is computed: these are the papers' values as printed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

DIR = Path(__file__).with_name("numbers")


@cache
def _load(paper: str) -> dict[str, Any]:
    path = DIR / f"{paper}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in DIR.glob("*.yaml"))
        raise ValueError(f"no printed numbers for paper {paper!r}; known: {known}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def entry(paper: str, name: str) -> dict[str, Any]:
    """One entry of a paper's file as stored (its ``source`` and data)."""
    entries = _load(paper)
    if name not in entries:
        raise ValueError(f"{paper}: no entry {name!r}; known: {sorted(entries)}")
    return entries[name]


def table(paper: str, name: str) -> pd.DataFrame:
    """A printed table as a DataFrame (a fresh copy: callers may add columns)."""
    e = entry(paper, name)
    if "rows" not in e:
        raise ValueError(f"{paper}: {name!r} is a set of facts, not a table; use facts()")
    return pd.DataFrame([list(r) for r in e["rows"]], columns=list(e["columns"]))


def facts(paper: str, name: str) -> dict[str, Any]:
    """Named printed values (nested mappings kept, lists as tuples)."""
    e = entry(paper, name)
    if "values" not in e:
        raise ValueError(f"{paper}: {name!r} is a table, not a set of facts; use table()")

    def freeze(v):
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        if isinstance(v, dict):
            return {k: freeze(x) for k, x in v.items()}
        return v

    return freeze(e["values"])
