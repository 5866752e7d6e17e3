"""The reference of every run-config key, generated from the schema into the book.

``python -m gmdiff.config_reference`` writes ``book/config_reference.md``: one table per
section of :class:`gmdiff.config.RunConfig` (the ``train`` section is
:class:`gmdiff.train.TrainConfig`) with each key's type and default read from the
dataclasses, and its meaning and the paper setting it reproduces from :data:`KEYS`; then
the options of every schedule and sampler, read from their signatures.
``--check`` compares the page with the schema instead and exits 1 when they differ.

:data:`KEYS` must name every key of the schema and nothing else: ``tests/test_config_reference.py``
fails when a key is added without a description, and when the checked-in page is not what
this module generates.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def doc(meaning: str, paper: str = "") -> tuple[str, str]:
    """A key's entry in :data:`KEYS`: what it means, and the paper setting it reproduces."""
    return meaning, paper


#: dotted key -> (meaning, the paper setting it reproduces, or "").
KEYS: dict[str, tuple[str, str]] = {
    "out_dir": doc(
        "Folder of the run: checkpoint.pt, train_log.jsonl, config.yaml, samples.pt, "
        "metrics.json, and the pictures: images/ and grid.png for images, scatter.png for "
        "2-D data.",
        "",
    ),
    # data -------------------------------------------------------------------------------
    "data.name": doc(
        "The dataset: a toy with an exact density (ring2d, grid2d, low_rank_gmm) or images "
        "(digits8x8, mnist5k, mnist32 shipped; cifar10, celeba64, lsun read from "
        "options.data_dir).",
        "",
    ),
    "data.options": doc(
        "Keyword arguments of that dataset's loader in gmdiff.data, e.g. {k: 8, radius: 2.0, "
        "std: 0.1} for ring2d or {data_dir: ...} for cifar10.",
        "",
    ),
    "data.hflip": doc(
        "Random horizontal flips of the training images.",
        "true in Ho et al. 2020 (CIFAR-10) and Song et al. 2021",
    ),
    "data.centered": doc(
        "true: images in [-1, 1]; false: in [0, 1].",
        "false for score_sde's VE models (Song et al. 2021)",
    ),
    # model ------------------------------------------------------------------------------
    "model.net": doc("A network config name in gmdiff.nets.CONFIGS.", ""),
    "model.overrides": doc(
        "Fields of that network config to change, e.g. {width: 32, depth: 2}. GM-DDPM nets: "
        "lam, and the reading of the scalar means: direction ones (every pixel shifted "
        "alike, the default), direction unit (along 1/sqrt(D)) or per_coordinate: true (a "
        "component per pixel; no classifier, so loss.options.classifier_weight: 0).",
        "GM-DDPM: lam 0.2 (Table 3, CIFAR-10); the paper's means are scalars",
    ),
    "model.precond": doc(
        "How the raw network becomes D(x, sigma): edm (c_skip, c_out, c_in, c_noise), ve, "
        "score (the net outputs the score) or vp (the net predicts eps).",
        "edm: Karras et al. 2022, Table 1",
    ),
    "model.sigma_data": doc(
        "Standard deviation of the data used by EDM's preconditioning and loss weight.",
        "0.5: Karras et al. 2022, Table 1",
    ),
    # loss -------------------------------------------------------------------------------
    "loss.name": doc(
        "edm, dsm (VE denoising score matching), eps (DDPM's L_simple), smd or gm_ddpm.",
        "edm: Karras et al. 2022, Eq. 8; eps: Ho et al. 2020, Eq. 14",
    ),
    "loss.options": doc(
        "edm: p_mean, p_std; dsm, eps: noise (`{name: ..., **arguments}`, a model of "
        "gmdiff.noise.NOISES, e.g. {name: gm_sgm, beta: 2}); smd: n_eta, reduction, "
        "temperature; gm_ddpm: classifier_weight (0 under per_coordinate).",
        "edm: p_mean -1.2, p_std 1.2 (Karras et al. 2022, Table 1)",
    ),
    # schedule ---------------------------------------------------------------------------
    "schedule.name": doc(
        "The noise process: edm, ve, vp_linear, ddpm_linear or ddpm_cosine (options below).",
        "",
    ),
    "schedule.options": doc(
        "Arguments of that process (see Schedule options below).",
        (
            "edm: sigma 0.002..80, rho 7 (Karras et al. 2022, Eq. 5); ddpm_linear: T 1000, "
            "beta 1e-4..0.02 (Ho et al. 2020); ve: sigma 0.01..50 (Song et al. 2021, CIFAR-10)"
        ),
    ),
    # train ------------------------------------------------------------------------------
    "train.steps": doc("Optimiser steps; a rerun resumes up to this many.", ""),
    "train.batch_size": doc(
        "The global batch (split across torchrun processes).",
        "128: Ho et al. 2020 and Song et al. 2021, CIFAR-10",
    ),
    "train.lr": doc("Adam(W) learning rate.", "2e-4: Ho et al. 2020, CIFAR-10"),
    "train.warmup_steps": doc(
        "Linear learning-rate warm-up from lr / warmup_steps to lr.",
        "5000 in Ho et al. 2020's and score_sde's released code",
    ),
    "train.ema_decay": doc(
        "Decay per step of the exponential moving average of the weights (used to sample).",
        "0.9999: Ho et al. 2020; 0.999: Song et al. 2021 (VE)",
    ),
    "train.ema_rampup": doc(
        "> 0: caps the EMA's half-life at this fraction of the steps taken so far, so the "
        "EMA never holds the random initialisation (0: a constant decay).",
        "0.05: EDM's ema_rampup_ratio (Karras et al. 2022, NVlabs/edm)",
    ),
    "train.grad_clip": doc(
        "Maximum global gradient norm (0 disables clipping).",
        "1.0 in Ho et al. 2020's and score_sde's released code",
    ),
    "train.weight_decay": doc("AdamW's decoupled weight decay.", ""),
    "train.adam_betas": doc(
        "Adam's (beta_1, beta_2).",
        "(0.9, 0.999): Adam's defaults (Kingma & Ba 2015)",
    ),
    "train.adam_eps": doc("Adam's epsilon.", "1e-8: Song et al. 2021"),
    "train.seed": doc(
        "Seeds the network's initialisation and every step's randomness: a run is its config.",
        "",
    ),
    "train.log_every": doc("Steps between lines of train_log.jsonl.", ""),
    "train.ckpt_every": doc("Steps between checkpoints (0: only at the end).", ""),
    "train.bf16": ("bfloat16 autocast (CUDA only).", "the papers trained in float32"),
    "train.compile": doc("torch.compile the model (CUDA only).", ""),
    "train.device": doc(
        '"auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), or a device.', ""
    ),
    "train.tf32": ("TF32 matmuls and convolutions (CUDA only; process-wide flag).", ""),
    "train.channels_last": doc("NHWC weights and batches (CUDA only).", ""),
    "train.cudnn_benchmark": doc("cuDNN's per-shape algorithm search (CUDA only).", ""),
    "train.num_workers": doc(
        "DataLoader worker processes for a map-style dataset (0: read in the training "
        "process); the batches are the same.",
        "",
    ),
    "train.log": doc(
        "jsonl: train_log.jsonl only (no dependency); tensorboard: also TensorBoard scalars "
        "train/loss, train/lr, train/grad_norm and train/ema_init_share in out_dir/tensorboard/ "
        "and, for image data, a 4 x 4 grid of EMA samples (samples/ema, the sample section's "
        "sampler from sample.seed) at every checkpoint (needs the tensorboard package: "
        'pip install -e ".[tensorboard]").',
        "",
    ),
    "train.prefetch_factor": doc("Batches in flight per loader worker.", ""),
    "train.threads": doc(
        "Intra-op CPU threads of train, sample and evaluate (--threads): auto (one thread "
        "when a forward call costs under 1 GFLOP, else `OMP_NUM_THREADS` or every core) or a "
        "whole number >= 1; the count used is recorded with the run (gmdiff.threads).",
        "",
    ),
    # sample -----------------------------------------------------------------------------
    "sample.sampler": doc(
        "A name in gmdiff.samplers.SAMPLERS (see Sampler options below).",
        "heun: Karras et al. 2022, Alg. 1; edm_stochastic: their Alg. 2",
    ),
    "sample.steps": doc(
        "Sampler steps (denoiser evaluations: heun and edm_stochastic 2 * steps - 1).",
        "18 (35 evaluations): Karras et al. 2022, CIFAR-10",
    ),
    "sample.n": doc("How many samples gmdiff sample draws.", "50000: the papers' FID protocol"),
    "sample.batch": doc(
        "Rows of one network call while sampling: memory only, the samples do not depend on "
        "it (the sampler steps blocks of 1,024 samples, gmdiff.runs.SAMPLE_BLOCK, drawn from "
        "one generator); also the batch of a likelihood solve.",
        "",
    ),
    "sample.seed": doc("Seeds x_T and every random draw of the sampler.", ""),
    "sample.options": doc(
        "Keyword options of the sampler (see Sampler options below); noise as in "
        "loss.options; gaussian: data (teleport_heun) fits the data's Gaussian; gm_ddpm: "
        "strategy, and variance eq30 (the posterior variance of one path) or eq34 (the "
        "sigma-tilde of the GM-DDPM paper's Algs. 2-5).",
        (
            "edm_stochastic: S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003 with 256 steps "
            "(NVlabs/edm, ImageNet-64)"
        ),
    ),
    # evaluate ---------------------------------------------------------------------------
    "evaluate.n_projections": doc("Random projections of the sliced Wasserstein-2 distance.", ""),
    "evaluate.seed": doc(
        "Seeds the projections and the data examples compared or scored.",
        "",
    ),
    "evaluate.fid_reference": doc(
        "A folder of images (sub-folders included, hidden ones skipped, as clean-fid reads "
        "one) or an .npz of Inception statistics: report FID with its protocol instead of "
        "the data-space distances.",
        "50,000 samples against the training set (Heusel et al. 2017), as Ho et al. 2020 and "
        "Song et al. 2021",
    ),
    "evaluate.fid_mode": doc(
        "clean-fid's mode: clean or legacy_tensorflow.",
        "legacy_tensorflow: the TF Inception of the papers' FIDs; clean: Parmar et al. 2022",
    ),
    "evaluate.inception_dir": doc("Folder holding clean-fid's Inception weights.", ""),
    "evaluate.likelihood_n": doc(
        "PF-ODE NLL (bits/dim for images) of this many data examples (0: skip).",
        "bits/dim on CIFAR-10's test set: Song et al. 2021",
    ),
    "evaluate.divergence": doc(
        "hutchinson (unbiased trace estimate) or exact.",
        "hutchinson: Song et al. 2021 (Skilling-Hutchinson)",
    ),
    "evaluate.metrics": doc(
        "Extra image metrics through torch-fidelity (pip install -e '.[fidelity]'): is "
        "(Inception Score of the samples), kid (Kernel Inception Distance to the images of "
        "fid_reference); protocol in gmdiff.fidelity.",
        "IS: Salimans et al. 2016, 10 splits; KID: Binkowski et al. 2018, 100 subsets of 1000",
    ),
    "evaluate.dequantize": doc(
        "Uniform dequantisation of 8-bit images before the likelihood.",
        "as in Song et al. 2021's bits/dim",
    ),
}

#: The sections of a run config, in the order the page shows them.
SECTIONS = ("data", "model", "loss", "schedule", "train", "sample", "evaluate")


def schema_keys() -> Iterator[tuple[str, str, str]]:
    """(dotted key, type, default) of every key of :class:`gmdiff.config.RunConfig`, nested
    sections flattened; the default is "required" for a key without one."""
    from gmdiff.config import RunConfig

    def walk(cls: type, prefix: str) -> Iterator[tuple[str, str, str]]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            if dataclasses.is_dataclass(t):
                yield from walk(t, f"{prefix}{f.name}.")
                continue
            if f.default is not dataclasses.MISSING:
                default = _yaml(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                default = _yaml(f.default_factory())
            else:
                default = "required"
            yield f"{prefix}{f.name}", _type_name(t), default

    return walk(RunConfig, "")


def mismatches() -> tuple[list[str], list[str]]:
    """(schema keys without a meaning in :data:`KEYS`, :data:`KEYS` entries the schema
    does not have): both empty when the reference is complete."""
    names = [name for name, _, _ in schema_keys()]
    missing = [n for n in names if not KEYS.get(n, ("",))[0].strip()]
    return missing, sorted(set(KEYS) - set(names))


def _type_name(t: Any) -> str:
    return t.__name__ if isinstance(t, type) else str(t).replace("typing.", "")


def _yaml(value: Any) -> str:
    """A default as one would write it in the YAML file."""
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, tuple):
        value = list(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    except yaml.representer.RepresenterError:
        return repr(value)
    return text.removesuffix("\n").removesuffix("\n...")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _options(fn: Any, skip: tuple[str, ...]) -> str:
    """``name: default`` of the keyword parameters of ``fn`` that a config may set."""
    params = inspect.signature(fn).parameters.values()
    found = [
        f"`{p.name}: {_yaml(p.default)}`" if p.default is not p.empty else f"`{p.name}` (required)"
        for p in params
        if p.name not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return ", ".join(found) or "no options"


def _summary(fn: Any) -> str:
    """The first paragraph of ``fn``'s docstring on one line, its reST roles and double
    backticks made Markdown."""
    text = " ".join((inspect.getdoc(fn) or "").split("\n\n")[0].split())
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def render() -> str:
    """The book page, as Markdown."""
    from gmdiff.samplers import SAMPLERS
    from gmdiff.schedules import EDM, VE, DiscreteVP, VPLinear

    missing, extra = mismatches()
    if missing or extra:
        raise ValueError(
            f"gmdiff.config_reference.KEYS is out of date: describe {missing} and remove "
            f"{extra} (every key of gmdiff.config.RunConfig needs a meaning there)"
        )
    keys = list(schema_keys())
    lines = [
        "# Config reference",
        "",
        (
            "<!-- Generated by `python -m gmdiff.config_reference` from gmdiff.config, "
            "gmdiff.train.TrainConfig and gmdiff.config_reference.KEYS: edit those, not this "
            "page (tests/test_config_reference.py compares them). -->"
        ),
        "",
        (
            "Every key of a run config (`configs/*.yaml`, read by `gmdiff train|sample|evaluate "
            "--config ...` and built by the chapters through `gmdiff.config.from_dict`). Each key "
            "is checked: an unknown or mistyped key stops the run with a sentence naming it. Any "
            "key can be overridden on the command line with `--set section.key=value` (the value "
            "is read as YAML). *Paper setting* names the value a paper used, where one applies; "
            "the defaults themselves are not tied to one paper. A run's identity (the hash of "
            "its cached weights, `gmdiff.config.sha`) covers `data`, `model`, `loss`, "
            "`schedule` and `train` (without its bookkeeping keys); `sample`, `evaluate` and "
            "`out_dir` may change freely."
        ),
        "",
    ]
    header = ("key", "type", "default", "meaning", "paper setting")
    for section in ("", *SECTIONS):
        rows = [
            (f"`{name}`", t, default if default == "required" else f"`{default}`", *KEYS[name])
            for name, t, default in keys
            if (name.startswith(section + ".") if section else "." not in name)
        ]
        lines += [f"## `{section}`" if section else "## Top level", "", *_table(rows, header), ""]
    schedules = {
        "edm": EDM,
        "ve": VE,
        "vp_linear": VPLinear,
        "ddpm_linear": DiscreteVP.linear,
        "ddpm_cosine": DiscreteVP.cosine,
    }
    lines += [
        "## Schedule options (`schedule.options`)",
        "",
        "Read from the signatures in `gmdiff.schedules`.",
        "",
        *_table(
            [(f"`{n}`", _options(f, ("dtype",)), _summary(f)) for n, f in schedules.items()],
            ("schedule.name", "options and defaults", "what it is"),
        ),
        "",
        "## Sampler options (`sample.options`)",
        "",
        (
            "Read from the signatures in `gmdiff.samplers` (every sampler also takes "
            "`sample.steps`; `generator` and `callback` are set by the command, not the config)."
        ),
        "",
        *_table(
            [
                (f"`{n}`", _options(f, SET_BY_THE_COMMAND), _summary(f))
                for n, f in sorted(SAMPLERS.items())
            ],
            ("sample.sampler", "options and defaults", "what it is"),
        ),
        "",
    ]
    return "\n".join(lines)


#: Sampler parameters that the command sets, not ``sample.options``.
SET_BY_THE_COMMAND = ("denoiser", "schedule", "x_T", "steps", "generator", "callback")

PAGE = Path(__file__).resolve().parents[2] / "book" / "config_reference.md"


def main(argv: list[str] | None = None) -> int:
    """Write the page (default book/config_reference.md), or with ``--check`` exit 1 when
    the page differs from what the schema generates."""
    p = argparse.ArgumentParser(prog="python -m gmdiff.config_reference", description=__doc__)
    p.add_argument("--out", type=Path, default=PAGE, help="the page to write or check")
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        ok = args.out.is_file() and args.out.read_text() == text
        if not ok:
            print(f"{args.out} is stale: run python -m gmdiff.config_reference", file=sys.stderr)
        return 0 if ok else 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
