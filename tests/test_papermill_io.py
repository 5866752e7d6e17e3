"""Running chapters with papermill: the Jupytext handler reads the .py source, and a
parameter that the chapter's parameters cell does not assign (``-p profil full``) is
refused with one sentence before a kernel starts or the output is written, while declared
ones run; an unknown profile is named by gmdiff.study."""

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import papermill as pm
import pytest

from gmdiff.papermill_io import UnknownParameterError, check_parameters, declared_parameters
from gmdiff.study import STUDY_DIR, Study

# papermill warns that a .py input "does not end in one of ['.ipynb', '.json']"
pytestmark = pytest.mark.filterwarnings("ignore:The specified file .* does not end in")

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = """# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "ci"
seed: int = 0
data_dir, dataset = None, "cifar10"

# %%
print(profile, seed)
"""


@pytest.fixture
def chapter(tmp_path) -> Path:
    path = tmp_path / "chapter.py"
    path.write_text(CHAPTER)
    return path


def test_parameters_cell_names(chapter):
    assert declared_parameters(jupytext.read(chapter)) == ["profile", "seed", "data_dir", "dataset"]
    for source in sorted((ROOT / "notebooks").glob("*.py")):  # every chapter declares these
        names = declared_parameters(jupytext.read(source))
        assert {"profile", "seed"} <= set(names), (source.name, names)


def test_a_misspelt_parameter_is_refused_before_the_kernel_starts(chapter, tmp_path):
    out = tmp_path / "out.ipynb"
    params = {"profil": "full", "seed": 1, "sed": 2}
    with pytest.raises(UnknownParameterError) as err:
        pm.execute_notebook(str(chapter), str(out), parameters=params, progress_bar=False)
    assert str(err.value) == (
        f"{chapter} has no parameters 'profil', 'sed'; its parameters cell assigns profile, "
        "seed, data_dir, dataset"
    )
    assert isinstance(err.value, ValueError) and not out.exists()
    nb = pm.execute_notebook(  # declared names run (a kernel starts)
        str(chapter), str(out), parameters={"profile": "full", "seed": 1}, progress_bar=False
    )
    check_parameters(nb)
    assert nb.cells[-1].outputs[0].text == "full 1\n"


def test_papermill_command_prints_one_sentence(chapter, tmp_path):
    """The papermill command itself: exit status 2, the sentence last, no output file."""
    out = tmp_path / "out.ipynb"
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    argv = [str(chapter), str(out), "-p", "profil", "full", "--no-progress-bar"]
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", *argv], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and not out.exists()
    assert proc.stderr.splitlines()[-1] == (
        f"Error: {chapter} has no parameter 'profil'; its parameters cell assigns profile, "
        "seed, data_dir, dataset"
    )


def test_an_unknown_profile_or_chapter_is_named():
    with pytest.raises(ValueError) as err:
        Study.open("gs_far_field", "fulll")
    assert str(err.value) == "profile must be one of ['ci', 'full'], got 'fulll'"
    with pytest.raises(KeyError) as err:
        Study.open("gs_far_feld", "ci")
    known = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
    assert err.value.args[0] == f"no study for chapter 'gs_far_feld'; known: {known}"
