"""``gmdiff train|sample|evaluate --config configs/<run>.yaml``: the command line.

The run config (one YAML file; its sections and checks) is described in
:mod:`gmdiff.config`; :mod:`gmdiff.runs` builds, trains and samples it, the same way for
the chapters. Any key can be overridden with ``--set section.key=value`` (value parsed as
YAML).

``train`` resumes from out_dir's checkpoint only when it was written by the same data,
model, loss, schedule and train sections (``train.steps`` may grow; see
:data:`gmdiff.train.RESUMABLE`), and writes ``config.yaml`` only after that check.

Threads. Each command runs on the intra-op threads of ``train.threads`` (``--threads``
overrides it): "auto" (default) is one thread for a model whose forward call costs less
than :data:`gmdiff.threads.AUTO_FLOPS`, else torch's default; the count is recorded with
the run (:mod:`gmdiff.threads`). Unless ``OMP_WAIT_POLICY`` is set, the command sets it to
PASSIVE before torch loads, so idle OpenMP workers sleep instead of spinning.

Errors. A bad input (a config value, a missing or unreadable file, an out_dir in use or
not writable) prints one sentence on stderr naming the culprit and exits with status 1;
``--debug`` raises it with its traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from gmdiff import threads

threads.prefer_passive_wait()  # before torch loads the OpenMP runtime (imports below)

from gmdiff.commands import evaluate, sample
from gmdiff.config import load_config
from gmdiff.evaluation import protocol_text
from gmdiff.runs import train

__all__ = ["evaluate", "load_config", "main", "sample", "train"]

# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

_EPILOG = """\
examples:
  gmdiff train --config configs/toy_gmm.yaml             # checkpoints into out_dir
  gmdiff sample --config configs/toy_gmm.yaml            # out_dir/samples.pt from EMA weights
  gmdiff evaluate --config configs/toy_gmm.yaml          # out_dir/metrics.json
  gmdiff sample --config configs/pretrained_ddpm_cifar10.yaml --pretrained ddpm-cifar10-32/
  gmdiff evaluate --config configs/pretrained_ddpm_cifar10.yaml \\
      --set evaluate.fid_reference=cifar10_train_png/   # FID with its protocol
  gmdiff sample --config configs/toy_gmm.yaml --set sample.sampler=edm_stochastic \\
      --set 'sample.options={S_churn: 10, S_noise: 1.003}'   # Karras et al. 2022, Alg. 2
  gmdiff train --config configs/toy_gmm.yaml --set train.steps=100 --set out_dir=/tmp/run
  gmdiff train --config configs/digits_edm.yaml --threads 1    # one intra-op thread
  torchrun --nproc_per_node 4 -m gmdiff.cli train --config configs/ddpm_cifar10.yaml

A rerun of `train` resumes from out_dir/checkpoint.pt up to train.steps (exactly: same
weights as an uninterrupted run on CPU) when the checkpoint was written with the same
data, model, loss, schedule and train settings; pass --no-resume to start over.
--threads (train.threads) is "auto" by default: one thread for small models, torch's
default for large ones (gmdiff.threads); the count used is recorded with the run.
A bad input prints one sentence and exits with status 1; --debug shows the traceback.
The config format is described in the module docstring of gmdiff.config, key by key in
the book's page book/config_reference.md (python -m gmdiff.config_reference), and by the
examples in configs/.
"""


def _version() -> str:
    """The installed distribution's version (importlib.metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gmdiff")
    except PackageNotFoundError:
        from gmdiff import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gmdiff",
        description="Train, sample and evaluate diffusion models from a YAML run config.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"gmdiff {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,sample,evaluate}")
    helps = {
        "train": "train the model (resumes from out_dir/checkpoint.pt if present)",
        "sample": "draw sample.n samples (EMA weights, or --pretrained) into out_dir/samples.pt "
        "and PNGs",
        "evaluate": "compare out_dir/samples.pt with the data (or FID against "
        "evaluate.fid_reference) into out_dir/metrics.json",
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
        c.add_argument(
            "--threads",
            metavar="N|auto",
            help="intra-op CPU threads (train.threads): a whole number, or auto (default: one "
            "thread for small models, torch's default for large ones)",
        )
        c.add_argument("--debug", action="store_true", help="on an error, show its full traceback")
        if name == "train":
            c.add_argument(
                "--no-resume",
                action="store_true",
                help="start over: delete out_dir's checkpoint and log instead of resuming",
            )
        if name in ("sample", "evaluate"):
            c.add_argument(
                "--checkpoint", help="checkpoint to load (default: out_dir/checkpoint.pt)"
            )
            c.add_argument(
                "--pretrained",
                metavar="PATH",
                help="a network gmdiff did not train: a diffusers folder or an EDM-format "
                "state dict (see gmdiff.loaders)",
            )
            c.add_argument(
                "--weights",
                choices=("ema", "raw", "as stored"),
                help="which weights: a checkpoint's ema (default) or raw; for --pretrained, "
                "what the file holds, as recorded in the protocol (default 'as stored')",
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
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gmdiff {args.command}: {_stopped(args)}", file=sys.stderr)
        return 130
    return 0


def _stopped(args: argparse.Namespace) -> str:
    """One line saying what an interrupted (Ctrl-C) command kept."""
    try:
        out = load_config(args.config, args.set).out_dir
    except Exception:  # noqa: BLE001 -- stopped before the config was read
        return "stopped; nothing was written"
    if args.command == "sample":
        return f"stopped; the samples.pt, images/ and grid.png in {out} were not changed"
    if args.command == "evaluate":
        return f"stopped; {out}/metrics.json was not changed"
    from pathlib import Path

    import torch

    ckpt = Path(out) / "checkpoint.pt"
    try:
        step = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["step"]
    except Exception:  # noqa: BLE001 -- none yet, or unreadable
        return f"stopped before the first checkpoint; nothing to resume in {out}"
    return f"stopped; checkpoint at step {step} kept ({ckpt}); rerun the command to resume"


def _run(args: argparse.Namespace) -> None:
    """Carry out the parsed command."""
    overrides = list(args.set)
    if args.threads is not None:
        overrides.append(f"train.threads={threads.check(args.threads, '--threads')}")
    cfg = load_config(args.config, overrides)
    if args.command == "train":
        history = train(cfg, resume=not args.no_resume, progress_lines=True)
        if history:
            print(json.dumps(history[-1]))
    elif args.command == "sample":
        x = sample(cfg, args.checkpoint, args.pretrained, args.weights)
        pngs = " and PNGs (images/, grid.png)" if x.ndim == 4 else ""
        pngs = " and scatter.png" if x.ndim == 2 and x.shape[1] == 2 else pngs
        print(
            f"wrote {x.shape[0]} samples of shape {tuple(x.shape[1:])} to "
            f"{cfg.out_dir}/samples.pt{pngs}"
        )
    else:
        result = evaluate(cfg, args.checkpoint, args.pretrained, args.weights)
        if "fid" in result:
            print(protocol_text(result))
        if "is_kid_protocol" in result:
            from gmdiff.fidelity import protocol_text as is_kid_text

            print(is_kid_text(result))
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
