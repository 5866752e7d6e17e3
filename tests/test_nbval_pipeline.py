"""The notebook validation pipeline itself: a stored notebook whose printed number was
altered fails, a stored notebook that no longer matches its .py source fails (stale), and
a faithful pair passes. Runs `pytest --nbval` in a subprocess on three tiny pairs."""

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


def test_nbval_catches_altered_output_and_stale_source(tmp_path):
    _write_pair(tmp_path, "faithful", SOURCE, "0.75\n")
    _write_pair(tmp_path, "altered", SOURCE, "0.76\n")  # one printed digit changed
    _write_pair(tmp_path, "stale", SOURCE, "0.75\n")
    (tmp_path / "stale.py").write_text(SOURCE.replace("3 * 0.25", "3 * 0.5"))  # source edited
    report = tmp_path / "report.xml"
    subprocess.run(
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
            str(tmp_path),
            str(tmp_path),
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcome = {}
    for case in ET.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        stem = case.get("classname", "").split(".")[-1] or case.get("file", "")
        outcome.setdefault(stem, []).append((case.get("name"), failed))
    assert not any(f for _, f in outcome["faithful"]), outcome
    assert any(f for _, f in outcome["altered"]), outcome
    assert outcome["stale"] == [("stale", True)], outcome
