"""``python -m gmdiff.train_worker CONFIGS.yaml NAME CACHE``: train the runs of CONFIGS.yaml
(a list of run configs) into the model cache, as :func:`gmdiff.runs.load_or_train` would:
one run alone, several as one batched bank (:func:`gmdiff.ensemble.train_bank`, each
member then finished by ``load_or_train``); the worker process of
:func:`gmdiff.runs.load_or_train_many`."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gmdiff import config, runs


def main(argv: list[str]) -> None:
    path, name, cache = argv
    cfgs = [config.from_dict(d) for d in yaml.safe_load(Path(path).read_text())]
    if len(cfgs) > 1:
        from gmdiff.ensemble import train_bank

        train_bank(cfgs, name, cache_dir=cache)
    for cfg in cfgs:
        runs.load_or_train(cfg, name, cache_dir=cache)


if __name__ == "__main__":
    main(sys.argv[1:])
