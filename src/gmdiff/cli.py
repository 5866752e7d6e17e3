"""``gmdiff train|sample|evaluate --config configs/<run>.yaml``: the command line.

The run config (one YAML file; its sections and checks) is described in
:mod:`gmdiff.config`; :mod:`gmdiff.runs` builds, trains and samples it, the same way for
the chapters. Any key can be overridden with ``--set section.key=value`` (value parsed as
YAML).

``train`` resumes from out_dir's checkpoint only when it was written by the same data,
model, loss, schedule and train sections (``train.steps`` may grow; see
:data:`gmdiff.train.RESUMABLE`), and writes ``config.yaml`` only after that check.

Errors. A bad input (a config value, a missing or unreadable file, an out_dir in use or
not writable) prints one sentence on stderr naming the culprit and exits with status 1;
``--debug`` raises it with its traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from gmdiff import runs
from gmdiff.config import RunConfig, load_config
from gmdiff.runs import train
from gmdiff.train import atomic_save, atomic_write, errors_naming, load_checkpoint

__all__ = ["evaluate", "load_config", "main", "sample", "train"]

# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


def sample(cfg: RunConfig, checkpoint: str | Path | None = None) -> Tensor:
    """Draw ``sample.n`` samples from the EMA weights; saves them to out_dir/samples.pt."""
    from gmdiff.samplers import SAMPLERS

    run = runs.build(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "checkpoint.pt"
    step = load_checkpoint(ckpt, run.trained, ema=True, map_location=str(device))
    _check_writable(Path(cfg.out_dir))
    run.denoiser.to(device).eval()
    s = cfg.sample
    if s.n < 1 or s.batch < 1:
        raise ValueError(f"sample.n and sample.batch must be >= 1, got n={s.n}, batch={s.batch}")
    fn = runs.pick(SAMPLERS, s.sampler, "sample.sampler")
    x = runs.draw_samples(
        run.denoiser,
        run.schedule,
        fn,
        s.steps,
        run.shape,
        s.n,
        seed=s.seed,
        batch=s.batch,
        device=device,
        **s.options,
    )
    atomic_save(
        {"samples": x, "step": step, "sampler": s.sampler, "steps": s.steps},
        Path(cfg.out_dir) / "samples.pt",
    )
    return x


def _reference(cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[Tensor, object]:
    """n data examples to compare samples with (fresh draws for a toy, a random subset of
    the dataset otherwise, with the training centring) and the toy's analytic model."""
    data, model = runs.data_of(cfg)
    if model is not None:
        return data(n, gen), model
    idx = torch.randperm(len(data), generator=gen)[:n]
    x = data[idx] if isinstance(data, Tensor) else torch.stack([data[int(i)] for i in idx])
    return (x if cfg.data.centered else (x + 1) / 2), None


def evaluate(cfg: RunConfig) -> dict[str, float]:
    """Compare out_dir/samples.pt with the data: sliced Wasserstein-2 and RBF MMD^2
    (bandwidth: median pairwise distance of the data) on flattened examples; for toy data
    also the mean NLL of the samples under the true density next to that of true samples.
    Writes out_dir/metrics.json."""
    from gmdiff import metrics

    path = Path(cfg.out_dir) / "samples.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no samples at {path}; run `gmdiff sample` with this config first")
    _check_writable(path.parent)
    x = torch.load(path, weights_only=True)["samples"].double().flatten(1)
    gen = torch.Generator().manual_seed(cfg.evaluate.seed)
    ref, model = _reference(cfg, x.shape[0], gen)
    ref = ref.double().flatten(1)
    if ref.shape != x.shape:
        raise ValueError(
            f"samples {tuple(x.shape)} and data {tuple(ref.shape)} differ in shape: the "
            "dataset has fewer examples than sample.n; lower sample.n"
        )
    bandwidth = torch.cdist(ref, ref).median().item()
    result = {
        "n": x.shape[0],
        "sliced_wasserstein_2": metrics.sliced_wasserstein(x, ref, cfg.evaluate.n_projections, gen),
        "mmd2_rbf": metrics.mmd_rbf(x, ref, bandwidth),
        "mmd_bandwidth": bandwidth,
    }
    if model is not None:
        result["nll_samples"] = metrics.mean_nll(x, model)
        result["nll_data"] = metrics.mean_nll(ref, model)
    atomic_write(Path(cfg.out_dir) / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _check_writable(folder: Path) -> None:
    """Fail now, naming ``folder``, when results cannot be written there (not after the
    work that makes them)."""
    with errors_naming(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

_EPILOG = """\
examples:
  gmdiff train --config configs/toy_gmm.yaml             # checkpoints into out_dir
  gmdiff sample --config configs/toy_gmm.yaml            # out_dir/samples.pt from EMA weights
  gmdiff evaluate --config configs/toy_gmm.yaml          # out_dir/metrics.json
  gmdiff train --config configs/toy_gmm.yaml --set train.steps=100 --set out_dir=/tmp/run
  torchrun --nproc_per_node 4 -m gmdiff.cli train --config configs/ddpm_cifar10.yaml

A rerun of `train` resumes from out_dir/checkpoint.pt up to train.steps (exactly: same
weights as an uninterrupted run on CPU) when the checkpoint was written with the same
data, model, loss, schedule and train settings; pass --no-resume to start over.
A bad input prints one sentence and exits with status 1; --debug shows the traceback.
The config format is described in the module docstring of gmdiff.cli and in configs/.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gmdiff",
        description="Train, sample and evaluate diffusion models from a YAML run config.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,sample,evaluate}")
    helps = {
        "train": "train the model (resumes from out_dir/checkpoint.pt if present)",
        "sample": "draw sample.n samples from the EMA weights into out_dir/samples.pt",
        "evaluate": "compare out_dir/samples.pt with the data into out_dir/metrics.json",
    }
    for name, text in helps.items():
        c = sub.add_parser(name, help=text, description=text)
        c.add_argument("--config", required=True, help="run config YAML, e.g. configs/toy_gmm.yaml")
        c.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set train.steps=100 (repeatable)",
        )
        c.add_argument("--debug", action="store_true", help="on an error, show its full traceback")
        if name == "train":
            c.add_argument(
                "--no-resume",
                action="store_true",
                help="start over: delete out_dir's checkpoint and log instead of resuming",
            )
        if name == "sample":
            c.add_argument(
                "--checkpoint", help="checkpoint to load (default: out_dir/checkpoint.pt)"
            )
    return p


#: The errors a user's input causes (a value, a file, a folder, a diverging run): the CLI
#: prints them as one sentence. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, OSError, FloatingPointError)


def _sentence(err: BaseException) -> str:
    """The one-line message of a user error; an OSError as "path: reason"."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    elif isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``gmdiff``; returns the exit status: 0, 1 after a user error
    (printed as one sentence on stderr, raised with ``--debug``), 2 for a malformed
    command line (argparse)."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"gmdiff {args.command}: error: {_sentence(err)}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    """Carry out the parsed command."""
    cfg = load_config(args.config, args.set)
    if args.command == "train":
        history = train(cfg, resume=not args.no_resume)
        if history:
            print(json.dumps(history[-1]))
    elif args.command == "sample":
        x = sample(cfg, args.checkpoint)
        print(
            f"wrote {x.shape[0]} samples of shape {tuple(x.shape[1:])} to {cfg.out_dir}/samples.pt"
        )
    else:
        print(json.dumps(evaluate(cfg), indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
