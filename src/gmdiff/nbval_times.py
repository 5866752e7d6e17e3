"""pytest plugin: with ``GMDIFF_NB_TIMES=<path.json>`` set, ``pytest --nbval`` writes each
notebook's time to that JSON file: ``seconds``, the sum of its cells' setup, call and
teardown (kernel start included), and ``wall_seconds``, from the start of its first cell
to the end of its last, merged into what it already holds, so a partial run updates only the
notebooks it ran. Render the table into the book with ``python -m gmdiff.book_times``.
Enabled from the project's ``conftest.py``.

The same times order the run: the notebooks come first, the longest first by
:data:`TIMES` (the cold times last measured, committed), then the unit tests in their
order. Serially that changes nothing but the order; with ``pytest -n 2 --dist loadfile``
(pytest-xdist, the README's command) it is the longest-first schedule that keeps both
workers busy to the end (xdist's own reordering, by number of tests, is turned off). Under
xdist only the controller writes the JSON file."""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

ENV = "GMDIFF_NB_TIMES"
#: The committed per-notebook cold times that order the run (longest first).
TIMES = Path(__file__).resolve().parents[2] / "results" / "notebook_times.json"

_seconds: dict[str, float] = defaultdict(float)
_cells: dict[str, set[str]] = defaultdict(set)
_failed: set[str] = set()
_span: dict[str, list[float]] = {}
_began: list[float] = []  # when the session started


def pytest_configure(config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep our order
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items) -> None:
    """Notebooks first, longest first by :data:`TIMES`; then the other tests in order."""
    known = json.loads(TIMES.read_text())["notebooks"] if TIMES.is_file() else {}

    def key(item) -> tuple[int, float]:
        nb = _notebook_of(item.nodeid)
        if nb is None:
            return (1, 0.0)
        return (0, -known.get(nb, {}).get("seconds", 0.0))

    items.sort(key=key)  # stable: a notebook's cells keep their order


def pytest_runtest_logstart(nodeid: str, location) -> None:
    nb = _notebook_of(nodeid) if os.environ.get(ENV) else None
    if nb is not None:
        _span.setdefault(nb, [time.perf_counter(), 0.0])


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    nb = _notebook_of(nodeid) if os.environ.get(ENV) else None
    if nb is not None:
        _span[nb][1] = time.perf_counter()


def _notebook_of(nodeid: str) -> str | None:
    """``notebooks/x.py`` for an nbval cell item ``notebooks/x.py::Cell 3``, else None."""
    path, sep, _ = nodeid.partition("::")
    p = Path(path)
    return path if sep and p.parent.name == "notebooks" and p.suffix in (".py", ".ipynb") else None


def pytest_runtest_logreport(report) -> None:
    if not os.environ.get(ENV):
        return
    nb = _notebook_of(report.nodeid)
    if nb is None:
        return
    _seconds[nb] += report.duration
    _cells[nb].add(report.nodeid)
    if report.failed:
        _failed.add(nb)


def merge(
    path: Path,
    seconds: dict,
    cells: dict,
    failed: set,
    machine: dict,
    wall: dict | None = None,
    run: dict | None = None,
) -> dict:
    """The JSON at ``path`` (if any) updated with this run's notebooks; ``run`` (a whole
    run's wall time and test files at a time) replaces the last whole run's, which a
    partial run keeps."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    notebooks = data.get("notebooks", {})
    for nb, s in seconds.items():
        notebooks[nb] = {
            "seconds": round(s, 1),
            "cells": len(cells[nb]),
            "passed": nb not in failed,
        }
        if wall and nb in wall:
            notebooks[nb]["wall_seconds"] = round(wall[nb], 1)
    out = {"machine": machine, "notebooks": dict(sorted(notebooks.items()))}
    if run or "run" in data:
        out["run"] = run or data["run"]
    return out


def pytest_sessionstart(session) -> None:
    _began.append(time.perf_counter())


def pytest_sessionfinish(session) -> None:
    target = os.environ.get(ENV)
    if not target or not _seconds or hasattr(session.config, "workerinput"):
        return  # (an xdist worker: the controller, which sees every report, writes)
    machine = {
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    path = Path(target)
    wall = {nb: end - start for nb, (start, end) in _span.items()}
    data = merge(path, _seconds, _cells, _failed, machine, wall)
    if len(_seconds) == len(data["notebooks"]):  # a whole run (not one chapter): its figures
        data["run"] = {
            "notebooks": len(_seconds),
            "workers": int(getattr(session.config.option, "numprocesses", None) or 1),
            "seconds": round(time.perf_counter() - _began[0], 1),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
