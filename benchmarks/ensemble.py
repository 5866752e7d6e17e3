"""A bank of K toy MLPs trained as one batched ensemble (:class:`gmdiff.ensemble.Bank`)
against the same K runs trained one after another with the Trainer, on one intra-op
thread, as interleaved pairs in one process (benchmarks/timing.py): the ratio, not the
absolute time, is the measurement.

The bank is configs/smd_toy.yaml's DDPM baseline (gmdiff.papers.smd.config_for, kind
"ddpm"): an MLP 3 x 128 eps network, DDPM's eps loss on the cosine schedule with T = 10,
batch 256. Each side trains ``steps`` steps of every member from a fresh initialisation
(building the members included, writing nothing).

``python -m benchmarks.ensemble [--ks 3 8] [--steps 40] [--repeats 11] [--out FILE]``
prints one row per K (seconds of each side, the median ratio sequential / bank and its
range); ``make bench`` writes results/bench_ensemble.json and the performance page
renders it (benchmarks/render.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from gmdiff import threads

threads.prefer_passive_wait()  # as the gmdiff command does, before torch loads OpenMP

import torch

from benchmarks.timing import cpu_name, interleaved
from gmdiff import ensemble, runs
from gmdiff.cli import load_config

ROOT = Path(__file__).resolve().parents[1]
DDPM_MLP = [
    "loss.name=eps",
    "loss.options={}",
    "model.net=toy_mlp",
    "model.overrides.width=128",
    "model.overrides.depth=3",
    "train.batch_size=256",
    "train.log_every=1000000",
    "train.ckpt_every=0",
]


def bank_configs(k: int, steps: int) -> list:
    base = load_config(ROOT / "configs/smd_toy.yaml", [*DDPM_MLP, f"train.steps={steps}"])
    return [
        dataclasses.replace(base, train=dataclasses.replace(base.train, seed=s)) for s in range(k)
    ]


def bench_ensemble(ks=(3, 8), steps: int = 40, repeats: int = 11) -> list[dict]:
    """One row per K: sequential Trainer fits vs one Bank fit of the same K configs."""
    rows = []
    with threads.using(1), torch.random.fork_rng(devices=[]):
        for k in ks:
            cfgs = bank_configs(k, steps)

            def sequential(cfgs=cfgs) -> None:
                for cfg in cfgs:
                    runs._trainer(runs.build(cfg), None).fit(resume=False)

            def batched(cfgs=cfgs) -> None:
                ensemble.Bank([runs._trainer(runs.build(c), None) for c in cfgs]).fit()

            r = interleaved(sequential, batched, repeats)
            rows.append(
                {
                    "K": k,
                    "steps": steps,
                    "sequential_s": r["a_s"],
                    "bank_s": r["b_s"],
                    "ratio": r["ratio"],
                    "ratio_min": r["ratio_min"],
                    "ratio_max": r["ratio_max"],
                    "repeats": repeats,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = bench_ensemble(args.ks, args.steps, args.repeats)
    result = {"cpu": cpu_name(), "torch": torch.__version__, "rows": rows}
    for row in rows:
        print(
            f"K = {row['K']}: sequential {row['sequential_s']:.2f} s, bank {row['bank_s']:.2f} s, "
            f"sequential / bank {row['ratio']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
