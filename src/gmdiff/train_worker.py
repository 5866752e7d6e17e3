"""``python -m gmdiff.train_worker CONFIG.yaml NAME CACHE``: train one run into the model
cache, as :func:`gmdiff.runs.load_or_train` would; the worker process of
:func:`gmdiff.runs.load_or_train_many`."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gmdiff import config, runs


def main(argv: list[str]) -> None:
    path, name, cache = argv
    cfg = config.from_dict(yaml.safe_load(Path(path).read_text()))
    runs.load_or_train(cfg, name, cache_dir=cache)


if __name__ == "__main__":
    main(sys.argv[1:])
