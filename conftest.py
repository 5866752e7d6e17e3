"""Project-wide pytest configuration: validate notebooks/*.py against their stored
executed .ipynb under ``pytest --nbval`` (see gmdiff.nbval_plugin)."""

pytest_plugins = ["gmdiff.nbval_plugin"]
