"""Project-wide pytest configuration: validate notebooks/*.py against their stored
executed .ipynb under ``pytest --nbval`` (see gmdiff.nbval_plugin); order the run,
notebooks first and the longest first, and with GMDIFF_NB_TIMES=<path.json> set record
each notebook's time (gmdiff.nbval_times)."""

import os

# The notebook kernels (and the training processes they start) inherit this: an OpenMP
# thread that waits at a barrier sleeps instead of spinning, so that two chapters run side
# by side (`pytest -n 2`) do not take each other's cores while they wait (the collapse
# measured in gmdiff.threads). It changes no number, only how idle threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

pytest_plugins = ["gmdiff.nbval_plugin", "gmdiff.nbval_times"]
