"""The map of the code in book/developer_notes.md is the rule: every module of the package is
in one layer of its table, and no module imports one of a later layer (function-local
imports included), so the dependency graph runs one way."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gmdiff"
IMPORT = re.compile(r"^\s*(?:from gmdiff(?:\.(\w+))?[\w.]* import \(?([\w, ]+)|import gmdiff\.(\w+))", re.M)


def layer_table(text: str) -> list[tuple[str, list[str]]]:
    """(layer, module patterns) of the notes' table, in order: ``nets/`` a sub-package,
    ``nbval_*`` a prefix."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0], re.findall(r"`([\w/*]+)`", cells[1])))
    return rows


def layer_of(module: str, table) -> int | None:
    for i, (_, patterns) in enumerate(table):
        for p in patterns:
            if module == p.rstrip("/") or (p.endswith("*") and module.startswith(p[:-1])):
                return i
    return None


def upward_imports(table) -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        mine = layer_of(own, table)
        for m in IMPORT.finditer(path.read_text()):
            names = [m.group(1)] if m.group(1) else (m.group(2) or m.group(3)).split(",")
            for name in (n.strip() for n in names):
                theirs = layer_of(name, table)
                if theirs is not None and mine is not None and theirs > mine:
                    bad.append(f"{path.relative_to(ROOT)}: {table[mine][0]} imports {name} ({table[theirs][0]})")
    return bad


TABLE = layer_table((ROOT / "book" / "developer_notes.md").read_text())


def test_the_table_is_read():
    assert [name for name, _ in TABLE][:2] == ["core", "storage"] and len(TABLE) >= 5


def test_every_module_has_a_layer():
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*")}
    modules -= {"__init__", "__pycache__"}
    assert sorted(m for m in modules if layer_of(m, TABLE) is None and not m.endswith("-info")) == []


def test_no_import_runs_back_up():
    assert upward_imports(TABLE) == []


def test_the_check_finds_an_upward_import():
    """With `digit_classifier` placed above `metrics`, metrics' import of it is flagged."""
    table = [("core", ["metrics"]), ("studies", ["digit_classifier"])]
    assert "src/gmdiff/metrics.py: core imports digit_classifier (studies)" in upward_imports(table)
