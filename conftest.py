"""Project-wide pytest configuration: validate notebooks/*.py against their stored
executed .ipynb under ``pytest --nbval`` (see gmdiff.nbval_plugin), and, with
GMDIFF_NB_TIMES=<path.json> set, record each notebook's time (gmdiff.nbval_times)."""

pytest_plugins = ["gmdiff.nbval_plugin", "gmdiff.nbval_times"]
