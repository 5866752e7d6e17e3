"""Generated tables in the book: the marked sections of book/reproducibility.md and
book/performance.md equal what the renderers make from the results files; the timing
helpers of benchmarks/ measure what they claim."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from gmdiff import book_times, nbval_times

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def test_notebook_times_section_is_rendered_from_the_json():
    page = (ROOT / "book/reproducibility.md").read_text()
    data = json.loads((RESULTS / "notebook_times.json").read_text())
    assert book_times.section(page, book_times.NOTEBOOK_TIMES) == book_times.times_table(data), (
        "book/reproducibility.md is stale: python -m gmdiff.book_times results/notebook_times.json"
    )


def test_performance_page_is_rendered_from_the_results():
    from benchmarks import render

    page = ROOT / "book/performance.md"
    assert page.read_text() == render.render(RESULTS, page, ROOT / "notebooks"), (
        "book/performance.md is stale (results/bench_*.json or the stored notebooks' cell "
        "times changed): python -m benchmarks.render"
    )


def test_cpu_header_names_the_thread_count_not_the_threads_rows():
    """The threads study is stored under ``cpu.thread_rows``; ``cpu.threads`` stays the run's
    thread count, so the CPU section's first line is prose, not a dumped dict (it was, when
    the study overwrote the count)."""
    from benchmarks import render

    data = json.loads((RESULTS / "bench_cpu.json").read_text())
    assert isinstance(data["cpu"]["threads"], int)
    head = render.cpu_tables(data).splitlines()[0]
    assert f"{data['cpu']['threads']} thread(s)" in head and "{" not in head, head


def test_sections_replace_only_their_text_and_need_markers():
    text = "intro\n<!-- t:start -->\nold\n<!-- t:end -->\noutro\n"
    new = book_times.replace_section(text, "t", "| a |\n")
    assert new == "intro\n<!-- t:start -->\n| a |\n<!-- t:end -->\noutro\n"
    assert book_times.section(new, "t") == "| a |"
    with pytest.raises(ValueError, match="no section"):
        book_times.replace_section("no markers", "t", "x")


def test_times_table_sorts_and_totals():
    data = {"machine": {"cpus": 2}, "notebooks": {
        "notebooks/a.py": {"seconds": 10.0, "cells": 3, "passed": True, "wall_seconds": 12.0},
        "notebooks/b.py": {"seconds": 50.0, "cells": 5, "passed": False}}}  # fmt: skip
    table = book_times.times_table(data)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == ["| `b` | 5 | 50 | - | no |", "| `a` | 3 | 10 | 12 | yes |"]
    assert "**60** (1.0 min) | - |" in table


def test_nbval_times_merge_keeps_other_notebooks(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"notebooks": {"notebooks/old.py": {"seconds": 1.0}}}))
    out = nbval_times.merge(path, {"notebooks/x.py": 2.26}, {"notebooks/x.py": {"a", "b"}},
                            set(), {"cpus": 2})  # fmt: skip
    assert out["notebooks"]["notebooks/old.py"] == {"seconds": 1.0}
    assert out["notebooks"]["notebooks/x.py"] == {"seconds": 2.3, "cells": 2, "passed": True}
    assert nbval_times._notebook_of("notebooks/x.py::Cell 3") == "notebooks/x.py"
    assert nbval_times._notebook_of("tests/test_x.py::test_y") is None
    assert "run" not in out
    run = {"notebooks": 1, "workers": 2, "seconds": 90.0}
    path.write_text(json.dumps(nbval_times.merge(path, {}, {}, set(), {}, run=run)))
    kept = nbval_times.merge(path, {"notebooks/x.py": 1.0}, {"notebooks/x.py": {"a"}}, set(), {})
    assert kept["run"] == run  # a partial run keeps the last whole run's figures
    kept["notebooks"].pop("notebooks/old.py")
    text = book_times.times_table(kept)
    assert "pytest --nbval -n 2 --dist loadfile" in text and "**90 s (1.5 min)**" in text


def test_the_run_starts_with_the_longest_notebooks(tmp_path, monkeypatch):
    """Notebooks first, longest first by their measured times (unknown ones after the
    known), each notebook's cells in order; the unit tests after, in their order."""
    times = tmp_path / "t.json"
    times.write_text(json.dumps({"notebooks": {"notebooks/a.py": {"seconds": 5.0},
                                               "notebooks/b.py": {"seconds": 50.0}}}))  # fmt: skip
    monkeypatch.setattr(nbval_times, "TIMES", times)
    ids = ["tests/test_x.py::t1", "notebooks/a.py::Cell 0", "notebooks/c.py::Cell 0",
           "notebooks/b.py::Cell 0", "tests/test_y.py::t2", "notebooks/b.py::Cell 1"]  # fmt: skip
    items = [type("Item", (), {"nodeid": i})() for i in ids]
    nbval_times.pytest_collection_modifyitems(None, items)
    assert [i.nodeid for i in items] == [
        "notebooks/b.py::Cell 0", "notebooks/b.py::Cell 1", "notebooks/a.py::Cell 0",
        "notebooks/c.py::Cell 0", "tests/test_x.py::t1", "tests/test_y.py::t2"]  # fmt: skip


def test_interleaved_ratio_of_known_durations():
    from benchmarks.timing import interleaved

    r = interleaved(lambda: time.sleep(0.02), lambda: time.sleep(0.01), repeats=5)
    assert 1.5 < r["ratio"] < 2.6 and r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    assert r["a_s"] > r["b_s"]


def test_step_flops_of_a_linear_layer_and_mfu():
    from benchmarks.timing import mfu, peak_flops, step_flops

    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(16, 64)
    # forward 2 B I O; backward only the weight gradient (x needs none), 2 B I O
    flops = step_flops(lambda: lin(x).sum().backward())
    assert flops == 2 * 16 * 64 * 32 + 2 * 16 * 64 * 32
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.4e12)
    assert peak_flops("some CPU", "fp32") is None
    assert mfu(1e12, 0.5, 4e12) == pytest.approx(0.5)


def test_diffusers_twin_has_our_parameter_count_and_shapes():
    pytest.importorskip("diffusers")
    from benchmarks.twins import TwinCall, diffusers_twin, n_params
    from gmdiff.nets import UNet, get_config

    cfg = get_config("digits")
    ours, twin = UNet(cfg), diffusers_twin(cfg)
    assert n_params(ours) == n_params(twin) == 651_041
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 500.0])
    assert TwinCall(twin)(x, t).shape == ours(x, t).shape == x.shape
