"""The `full` profile of the GM-SGM tables chapter stops at once, with a message naming
the dataset it expects, when the data directory is missing (nothing is trained first)."""

import time
from pathlib import Path

import papermill as pm
import pytest

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "gm_sgm_tables.py"


@pytest.mark.parametrize("dataset", ["cifar10", "celeba64"])
def test_gm_sgm_tables_full_profile_without_data_stops_at_once(tmp_path, dataset):
    params = {"profile": "full", "data_dir": str(tmp_path / "missing"), "dataset": dataset}
    t0 = time.perf_counter()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(CHAPTER),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert err.value.ename == "FileNotFoundError"
    assert dataset in err.value.evalue and "data_dir" in err.value.evalue
    assert time.perf_counter() - t0 < 120  # a kernel start and the imports, no training


GMD_TABLES = CHAPTER.parent / "gmd_tables.py"


def test_gmd_tables_full_profile_without_data_stops_at_once(tmp_path):
    """GM-DDPM's Tables 1-3 at paper scale need the CIFAR-10 batches: a missing folder is a
    FileNotFoundError that says how to pass it, before anything is trained."""
    t0 = time.perf_counter()
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(GMD_TABLES),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "full", "data_dir": str(tmp_path / "missing")},
            kernel_name="python3",
            progress_bar=False,
        )
    assert err.value.ename == "FileNotFoundError"
    assert "CIFAR-10" in err.value.evalue and "data_dir" in err.value.evalue
    assert time.perf_counter() - t0 < 120  # a kernel start and the imports, no training
