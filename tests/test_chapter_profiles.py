"""Every chapter's ``profile`` parameter reaches every zoo model it loads or trains.

The teleportation chapter once called ``zoo.gmm_mlp(profile="ci")``, so its ``full``
profile silently ran the ``ci`` models. The check reads each chapter's code: a call of a
zoo function that takes a profile must pass the chapter's own ``profile`` variable.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from gmdiff import zoo

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))
PROFILED = {
    name
    for name, fn in vars(zoo).items()
    if inspect.isfunction(fn) and "profile" in inspect.signature(fn).parameters
}


def profile_leaks(source: str) -> list[str]:
    """The zoo calls in ``source`` whose profile is not the variable ``profile``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner, name = node.func.value, node.func.attr
        if not (isinstance(owner, ast.Name) and owner.id == "zoo" and name in PROFILED):
            continue
        given = [k.value for k in node.keywords if k.arg == "profile"] + node.args[:1]
        if not (len(given) == 1 and isinstance(given[0], ast.Name) and given[0].id == "profile"):
            bad.append(f"line {node.lineno}: zoo.{name}(...)")
    return bad


def test_the_check_catches_a_fixed_profile():
    assert PROFILED >= {"digits_edm", "gmm_mlp"}
    assert profile_leaks('import x\nm = zoo.gmm_mlp(profile="ci", seed=seed)') == [
        "line 2: zoo.gmm_mlp(...)"
    ]
    assert profile_leaks("m = zoo.digits_edm(seed=seed)") == ["line 1: zoo.digits_edm(...)"]
    assert profile_leaks("m = zoo.digits_edm(profile, seed=seed)") == []
    assert profile_leaks("m = zoo.gmm_mlp(profile=profile)") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_passes_its_profile_to_the_zoo(path):
    source = path.read_text()
    assert profile_leaks(source) == [], f"{path.name} fixes the profile of a zoo model"
