"""The notebook validation pipeline itself: a stored notebook whose printed number was
altered fails, a stored notebook that no longer matches its .py source fails (stale), a
chapter without its stored notebook fails (missing), and a faithful pair passes; in a
cell that declares ``# NBVAL_TOLERANCE``, a number inside the tolerance passes (column
padding may change) while one beyond it, a changed integer or changed words fail. Runs
`pytest --nbval` in a subprocess on tiny pairs."""

import subprocess
import sys
import xml.etree.ElementTree as ET

import jupytext
import nbformat

SOURCE = """# %% tags=["parameters"]
seed = 0

# %%
print(round(3 * 0.25 + seed, 4))
"""


TOLERANT_SOURCE = """# %% tags=["parameters"]
seed = 0

# %%
# NBVAL_TOLERANCE abs=0.05 rel=0.1  (a stand-in for a measured seed-to-seed spread)
print(f"FD {12.0 + seed:.2f} at  skip {6 + seed}")
"""


def _write_pair(folder, name, source, printed):
    py = folder / f"{name}.py"
    py.write_text(source)
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i, cell in enumerate(nb.cells, start=1):
        cell.outputs, cell.execution_count = [], i
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nbformat.write(nb, folder / f"{name}.ipynb")


def nbval_outcomes(folder) -> tuple[dict[str, list[tuple[str, bool]]], str]:
    """Run ``pytest --nbval`` on ``folder`` in a subprocess: ({file stem: [(item, failed)]},
    its report on stdout)."""
    report = folder / "report.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "--nbval-current-env",
            "-p",
            "gmdiff.nbval_plugin",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "--rootdir",
            str(folder),
            str(folder),
        ],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcome = {}
    for case in ET.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        stem = case.get("classname", "").split(".")[-1] or case.get("file", "")
        outcome.setdefault(stem, []).append((case.get("name"), failed))
    return outcome, proc.stdout


def test_nbval_catches_altered_output_and_stale_source(tmp_path):
    _write_pair(tmp_path, "faithful", SOURCE, "0.75\n")
    _write_pair(tmp_path, "altered", SOURCE, "0.76\n")  # one printed digit changed
    _write_pair(tmp_path, "stale", SOURCE, "0.75\n")
    (tmp_path / "stale.py").write_text(SOURCE.replace("3 * 0.25", "3 * 0.5"))  # source edited
    # 12.00 is printed; the bound is 0.05 + 0.1 * |stored|
    _write_pair(tmp_path, "inside", TOLERANT_SOURCE, "FD 13.20 at skip 6\n")  # 1.20 <= 1.37
    _write_pair(tmp_path, "beyond", TOLERANT_SOURCE, "FD 13.40 at skip 6\n")  # 1.40 > 1.39
    _write_pair(tmp_path, "integer", TOLERANT_SOURCE, "FD 12.00 at skip 7\n")  # 1 > 0.65
    _write_pair(tmp_path, "words", TOLERANT_SOURCE, "FD 12.00 at step 6\n")  # text is exact
    outcome, _ = nbval_outcomes(tmp_path)
    assert not any(f for _, f in outcome["faithful"]), outcome
    assert any(f for _, f in outcome["altered"]), outcome
    assert outcome["stale"] == [("stale", True)], outcome
    assert not any(f for _, f in outcome["inside"]), outcome
    for changed in ("beyond", "integer", "words"):
        assert any(f for _, f in outcome[changed]), (changed, outcome)


def test_a_chapter_without_its_executed_notebook_fails(tmp_path):
    """A Jupytext .py in a notebooks folder without its .ipynb (percent cells, or only
    the Jupytext header of the light format) fails as "missing"; a plain module or test
    file there and a percent-format .py elsewhere are not taken for chapters."""
    chapters = tmp_path / "notebooks"
    chapters.mkdir()
    (chapters / "percent.py").write_text(SOURCE)
    header = "# ---\n# jupyter:\n#   jupytext:\n#     formats: py:light\n# ---\n\n"
    (chapters / "light.py").write_text(header + "seed = 0\nprint(seed)\n")
    (chapters / "helper.py").write_text("# ---\n# a rule, not a header\n# ---\nX = 1\n")
    (chapters / "test_plain.py").write_text("def test_ok():\n    assert True\n")
    (tmp_path / "loose.py").write_text(SOURCE)
    outcome, report = nbval_outcomes(tmp_path)
    assert outcome == {
        "percent": [("missing", True)],
        "light": [("missing", True)],
        "test_plain": [("test_ok", False)],
    }, outcome
    py, ipynb = chapters / "percent.py", chapters / "percent.ipynb"
    assert (
        "percent.py has no executed notebook percent.ipynb beside it, so its outputs are not "
        f"checked; execute it: make notebooks (or papermill {py} {ipynb})\n"
    ) in report


def test_a_chapter_named_on_the_command_line_runs_once(tmp_path):
    """``pytest --nbval notebooks/x.py`` runs the chapter's cells in the kernel only; pytest
    does not also import the .py as a test module (which would execute the whole chapter
    a second time). The module-level marker below is written only by such an import."""
    chapters = tmp_path / "notebooks"
    chapters.mkdir()
    marker = tmp_path / "imported"
    source = SOURCE + f"\n# %%\nif __name__ != '__main__':\n    open({str(marker)!r}, 'w')\n"
    _write_pair(chapters, "chapter", source, "0.75\n")
    nb = nbformat.read(chapters / "chapter.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="0.75\n")]
    nb.cells[-1].outputs = []
    nbformat.write(nb, chapters / "chapter.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p",
         "gmdiff.nbval_plugin", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(chapters / "chapter.py")],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout
    assert not marker.exists()


def test_nbval_spread_reports_the_largest_change_per_cell(tmp_path):
    from gmdiff.nbval_spread import spread

    _write_pair(tmp_path, "stored", TOLERANT_SOURCE, "FD 12.00 at skip 6 and 2.00\n")
    _write_pair(tmp_path, "seed1", TOLERANT_SOURCE, "FD 13.20 at skip 6 and 1.00\n")
    _write_pair(tmp_path, "same", TOLERANT_SOURCE, "FD 12.00 at skip 6 and 2.00\n")
    _write_pair(tmp_path, "words", TOLERANT_SOURCE, "FD 12.00 at step 6 and 2.00\n")
    (cell,) = spread(tmp_path / "stored.ipynb", tmp_path / "seed1.ipynb")
    assert cell.cell == 1 and cell.same_text
    assert abs(cell.max_abs - 1.2) < 1e-12 and abs(cell.max_rel - 0.5) < 1e-12  # 2.00 -> 1.00
    assert spread(tmp_path / "stored.ipynb", tmp_path / "same.ipynb") == []
    assert not spread(tmp_path / "stored.ipynb", tmp_path / "words.ipynb")[0].same_text
