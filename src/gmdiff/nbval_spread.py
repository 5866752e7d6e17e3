"""Measure how far a chapter's printed numbers move between runs, to declare an honest
``# NBVAL_TOLERANCE`` (see :mod:`gmdiff.nbval_plugin`).

Run a chapter several times with different seeds (``papermill ... -p seed 1``) or under
other CPU kernel paths (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``,
``ATEN_CPU_CAPABILITY=default``), then compare each run with the stored notebook::

    python -m gmdiff.nbval_spread notebooks/gs_teleportation.ipynb runs/seed1.ipynb runs/seed2.ipynb

For every code cell whose outputs differ it prints the largest absolute and relative
change of any printed number, and whether the text around the numbers changed (a verdict
word or a label; no numeric tolerance can absorb that). Cells marked
``NBVAL_IGNORE_OUTPUT`` and papermill's injected-parameters cell are skipped.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import nbformat

from gmdiff.nbval_plugin import _NUMBER, _skeleton


@dataclass
class CellSpread:
    """How one code cell's printed numbers moved from the stored run to another run."""

    cell: int
    max_abs: float
    max_rel: float
    same_text: bool
    worst: str


def _code_cells(path: str) -> list:
    nb = nbformat.read(path, as_version=4)
    return [
        c for c in nb.cells
        if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
    ]


def _printed(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    return "\n".join(parts)


def spread(stored: str, other: str) -> list[CellSpread]:
    """Per code cell whose printed text differs: the largest change of a printed number."""
    result = []
    for i, (a, b) in enumerate(zip(_code_cells(stored), _code_cells(other), strict=True)):
        ta, tb = _printed(a), _printed(b)
        if "NBVAL_IGNORE_OUTPUT" in a.source or ta == tb:
            continue
        max_abs = max_rel = 0.0
        worst = ""
        for ref, got in zip(_NUMBER.findall(ta), _NUMBER.findall(tb)):
            d = abs(float(got) - float(ref))
            rel = d / abs(float(ref)) if float(ref) else (0.0 if d == 0 else float("inf"))
            max_abs = max(max_abs, d)
            if rel > max_rel:
                max_rel, worst = rel, f"{ref} -> {got}"
        result.append(CellSpread(i, max_abs, max_rel, _skeleton(ta) == _skeleton(tb), worst))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stored", help="the stored executed notebook")
    parser.add_argument("runs", nargs="+", help="executed notebooks of other seeds / machines")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(f"== {run}")
        for s in spread(args.stored, run):
            text = "" if s.same_text else "  TEXT CHANGED"
            print(f"cell {s.cell:3d}: max |change| {s.max_abs:.3g}, max relative {s.max_rel:.3g} "
                  f"({s.worst}){text}")


if __name__ == "__main__":
    main()
