"""Bad inputs, table-driven (issue 29): each case gives ``gmdiff`` (or the library) one bad
input and checks the exit status (1 for a user error), that the error is one sentence on
one line naming the culprit (the fragments listed), and that nothing in the run's folder
changed (every file's bytes hashed before and after).

The table is rendered into ``book/reliability.md`` between the ``bad-inputs-table``
markers; after changing a case, regenerate it with
``PYTHONPATH=src python tests/test_bad_inputs.py --write`` (a test checks they agree).

The other tests here check what the table cannot: provenance in every output, atomic
re-sampling (a SIGKILL during the PNG export), Ctrl-C, the umask, progress lines,
GM-DDPM's documented DDIM command, and a planted CIFAR-10 pickle that must not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gmdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book" / "reliability.md"
START, END = "<!-- bad-inputs-table:start -->", "<!-- bad-inputs-table:end -->"

TINY = {
    "data": {"name": "ring2d", "options": {"k": 8, "radius": 2.0, "std": 0.1}},
    "model": {
        "net": "toy_mlp",
        "overrides": {"embedding": "fourier", "width": 32, "depth": 2},
        "precond": "edm",
        "sigma_data": 1.4,
    },
    "loss": {"name": "edm"},
    "schedule": {"name": "edm", "options": {"sigma_min": 0.002, "sigma_max": 20.0}},
    "train": {"steps": 4, "batch_size": 64, "log_every": 2, "lr": 1e-3, "ema_decay": 0.9},
    "sample": {"sampler": "heun", "steps": 4, "n": 32},
    "evaluate": {"n_projections": 16},
}


def write_config(path: Path, out_dir: Path, **sections) -> Path:
    raw = {"out_dir": str(out_dir)} | json.loads(json.dumps(TINY))
    for name, value in sections.items():
        raw[name] = raw.get(name, {}) | value if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links not followed) -> the hash of its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny toy run, trained (4 steps) and sampled (32 samples), and its config."""
    base = tmp_path_factory.mktemp("bad_inputs")
    run = base / "run"
    cfg = write_config(base / "tiny.yaml", run)
    torch.set_num_threads(1)
    assert main(["train", "--config", str(cfg)]) == 0
    assert main(["sample", "--config", str(cfg)]) == 0
    return base


@dataclass
class Env:
    """What a case sees: ``base`` (the shared run: ``base/run``, its config
    ``base/tiny.yaml``), ``tmp`` (this case's own folder) and ``run``, the folder whose
    files must not change (the shared run, or a copy of it made by :meth:`copy_run`)."""

    base: Path
    tmp: Path
    run: Path = field(init=False)

    def __post_init__(self) -> None:
        self.run = self.base / "run"

    @property
    def cfg(self) -> str:
        return str(self.base / "tiny.yaml")

    def copy_run(self) -> Path:
        """A copy of the run (with a config pointing at it) that the case may damage."""
        self.run = self.tmp / "run"
        shutil.copytree(self.base / "run", self.run)
        write_config(self.tmp / "tiny.yaml", self.run)
        return self.run

    @property
    def copy_cfg(self) -> str:
        return str(self.tmp / "tiny.yaml")

    def vars(self) -> dict[str, str]:
        return {"run": str(self.run), "tmp": str(self.tmp), "base": str(self.base)}

    def fill(self, text: str) -> str:
        """``text`` with {run}, {tmp} and {base} replaced (other braces kept)."""
        for key, value in self.vars().items():
            text = text.replace("{" + key + "}", value)
        return text


@dataclass
class Case:
    id: str
    what: str  # the bad input, in words (rendered into the book)
    expect: tuple[str, ...]  # fragments of the sentence ({run}, {tmp} are filled in)
    argv: Callable[[Env], list[str]] | None = None  # a gmdiff command line
    call: Callable[[Env], object] | None = None  # or a library call that must raise
    exc: type[BaseException] = ValueError
    after: Callable[[Env], None] | None = None  # a further check afterwards


CASES: list[Case] = []


def cli(cmd: str, id: str, what: str, *expect: str, sets=(), extra=(), setup=None, after=None):
    """A case of ``gmdiff <cmd> --config <tiny> --set ...`` (``setup(env)`` may prepare
    files first and return more arguments)."""

    def argv(env: Env) -> list[str]:
        more = list(setup(env) or []) if setup else []
        cfg = env.copy_cfg if env.run != env.base / "run" else env.cfg
        args = [cmd, "--config", cfg]
        for s in sets:
            args += ["--set", s.format(**env.vars())]
        return args + [a.format(**env.vars()) for a in extra] + more

    CASES.append(Case(id, what, expect, argv=argv, after=after))


def lib(id: str, what: str, fn: Callable[[Env], object], *expect: str, exc=ValueError, after=None):
    CASES.append(Case(id, what, expect, call=fn, exc=exc, after=after))


def config_file(text: str) -> Callable[[Env], list[str]]:
    """A setup writing ``text`` (with {run}) as a config file passed after the tiny one."""

    def setup(env: Env) -> list[str]:
        path = env.tmp / "c.yaml"
        path.write_text(text.replace("{run}", str(env.run)))
        return ["--config", str(path)]  # argparse: the last --config wins

    return setup


# -- config files: keys given twice, missing sections ------------------------------------
TOY_TEXT = """\
out_dir: {run}
data:
  name: ring2d
  options: {k: 8, radius: 2.0, std: 0.1}
model:
  net: toy_mlp
  overrides: {embedding: fourier, width: 32, depth: 2}
  sigma_data: 1.4
train:
  steps: 2000
  batch_size: 64
"""  # a fixed text (not configs/toy_gmm.yaml), so the line numbers below stay put
TRAIN_LINE = TOY_TEXT.splitlines().index("train:") + 1
cli(
    "train",
    "dup-section",
    "a second `train:` section in the file (replaced the first)",
    f"key 'train' twice (lines {TRAIN_LINE} and {TOY_TEXT.count(chr(10)) + 1})",
    setup=config_file(TOY_TEXT + "train:\n  steps: 5\n"),
)
cli(
    "train",
    "dup-key",
    "`steps:` twice in the train section",
    f"key 'steps' twice (lines {TRAIN_LINE + 1} and {TRAIN_LINE + 2})",
    setup=config_file(TOY_TEXT.replace("  steps: 2000\n", "  steps: 2000\n  steps: 20\n")),
)
cli(
    "train",
    "dup-flow-key",
    "a key twice in a flow mapping: `options: {k: 8, k: 4}`",
    "key 'k' twice on line 4",
    setup=config_file(TOY_TEXT.replace("{k: 8, radius", "{k: 8, k: 4, radius")),
)
cli(
    "train",
    "dup-set-key",
    "a key twice in a --set value",
    "--set 'data.options={k: 8, k: 4}'",
    "key 'k' twice",
    sets=["data.options={{k: 8, k: 4}}"],
)
cli(
    "train",
    "dup-out-dir",
    "`out_dir:` twice",
    "key 'out_dir' twice (lines 1 and 2)",
    setup=config_file("out_dir: a\nout_dir: b\n"),
)
cli(
    "train",
    "no-out-dir",
    "a config without out_dir",
    "the config lacks key(s) ['out_dir']",
    setup=config_file(
        "data: {name: ring2d}\nmodel: {net: toy_mlp}\ntrain: {steps: 1, batch_size: 8}\n"
    ),
)
cli(
    "train",
    "no-model",
    "a config without a model section",
    "lacks key(s) ['model']",
    setup=config_file("out_dir: {run}\ndata: {name: ring2d}\ntrain: {steps: 1, batch_size: 8}\n"),
)
cli(
    "train",
    "empty-file",
    "an empty config file",
    "lacks key(s) ['out_dir', 'data', 'model', 'train']",
    setup=config_file(""),
)
cli(
    "train",
    "section-scalar",
    "a section that is a number: `train: 5`",
    "config section train must be a mapping, got 5",
    sets=["train=5"],
)
cli(
    "train",
    "config-dir",
    "a folder given as the config file",
    "config file",
    "not found",
    setup=lambda env: ["--config", str(env.tmp)],
)
cli(
    "train",
    "set-no-equals",
    "`--set train.steps` without a value",
    "--set expects section.key=value, got 'train.steps'",
    sets=["train.steps"],
)
cli(
    "train", "set-empty-key", "`--set =3`", "--set expects section.key=value, got '=3'", sets=["=3"]
)
cli(
    "train",
    "set-below-scalar",
    "`--set train.steps.x=1` (steps is no section)",
    "train.steps.x=1",
    "steps is not a section",
    sets=["train.steps.x=1"],
)
cli(
    "train",
    "out-dir-list",
    "`out_dir: [a]`",
    "config key out_dir must be of type str",
    sets=["out_dir=[a]"],
)

# -- names that are not known -------------------------------------------------------------
for key, value, fragment in [
    ("data.name", "rings", "data.name = 'rings' is not known"),
    ("model.net", "toy_mpl", "unknown network config 'toy_mpl'"),
    ("loss.name", "edn", "loss.name = 'edn' is not known"),
    ("schedule.name", "vee", "schedule.name = 'vee' is not known"),
    ("model.precond", "eddm", "model.precond = 'eddm' is not known"),
]:
    cli("train", f"unknown-{key}", f"`{key}: {value}`", fragment, sets=[f"{key}={value}"])

# -- train section values -------------------------------------------------------------------
for key, value, fragment in [
    ("batch_size", "0", "train.batch_size = 0 is out of range"),
    ("lr", "0", "train.lr = 0.0 is out of range"),
    ("lr", "-1e-3", "train.lr = -0.001 is out of range"),
    ("ema_decay", "1.5", "train.ema_decay = 1.5 is out of range"),
    ("warmup_steps", "-1", "train.warmup_steps = -1 is out of range"),
    ("grad_clip", "-1", "train.grad_clip = -1.0 is out of range"),
    ("weight_decay", "-0.1", "train.weight_decay = -0.1 is out of range"),
    ("log_every", "0", "train.log_every = 0 is out of range"),
    ("ckpt_every", "-1", "train.ckpt_every = -1 is out of range"),
    ("num_workers", "-1", "train.num_workers = -1 is out of range"),
    ("prefetch_factor", "0", "train.prefetch_factor = 0 is out of range"),
    ("adam_betas", "[0.9]", "train.adam_betas = [0.9] must be two numbers in [0, 1)"),
    ("adam_betas", "[0.9, 1.0]", "train.adam_betas = [0.9, 1.0] must be two numbers"),
    ("adam_betas", "[a, b]", "train.adam_betas = ['a', 'b'] must be two numbers"),
    ("adam_betas", "0.9", "train.adam_betas = 0.9 must be two numbers"),
    ("adam_betas", "[true, 0.9]", "train.adam_betas = [True, 0.9] must be two numbers"),
    ("device", "tpu", "train.device = 'tpu'"),
    ("device", "banana", "train.device = 'banana' is not a device"),
    ("bf16", "maybe", "config key train.bf16 must be of type bool, got 'maybe'"),
    ("seed", "1.5", "config key train.seed must be of type int"),
    ("steps", "1e3", "config key train.steps must be of type int"),
    ("steps", "-5", "train.steps = -5 is out of range"),
]:
    cli(
        "train",
        f"train-{key}-{value}",
        f"`train.{key}: {value}`",
        fragment,
        sets=[f"train.{key}={value}"],
    )
if not torch.cuda.is_available():
    cli(
        "train",
        "train-device-cuda",
        "`train.device: cuda` on a machine without CUDA",
        "train.device = 'cuda' but this machine has no CUDA device",
        "set train.device: auto",
        sets=["train.device=cuda"],
    )
    cli(
        "train",
        "train-device-cuda7",
        "`train.device: cuda:7` without CUDA",
        "train.device = 'cuda:7'",
        sets=["train.device=cuda:7"],
    )

# -- model, data, loss, schedule values -------------------------------------------------------
for sets, fragments, what in [
    (["model.sigma_data=abc"], ("config key model.sigma_data must be of type float",), None),
    (["model.overrides.width=64.5"], ("width must be a whole number", "64.5"), None),
    (["model.overrides.width=true"], ("width must be a whole number", "True"), None),
    (["model.overrides.depth='3'"], ("depth must be a whole number", "'3'"), None),
    (["model.overrides.embedding=3"], ("embedding must be a string", "got 3"), None),
    (["model.overrides.nope=1"], ("bad override for config 'toy_mlp'", "nope"), None),
    (["data.options=[1, 2]"], ("config key data.options must be of type dict",), None),
    (["data.hflip=2"], ("config key data.hflip must be of type bool, got 2",), None),
    (["data.options.k=0"], ("data.options: k must be >= 1, got 0",), None),
    (["data.options.std=-1"], ("data.options: std must be > 0", "-1"), None),
    (
        ["data.name=cifar10", "data.options={{data_dir: null}}"],
        ("data.options.data_dir is empty", "cifar10"),
        "an empty `data_dir:` (YAML null)",
    ),
    (
        ["data.name=cifar10", "data.options={{data_dir: ''}}"],
        ("data.options.data_dir is empty",),
        "`data_dir: ''`",
    ),
    (
        ["data.name=cifar10", "data.options={{data_dir: {run}/checkpoint.pt}}"],
        ("CIFAR-10 not found",),
        "a file given as the CIFAR-10 folder",
    ),
    (["schedule.options={{sigma_min: -1.0}}"], ("EDM got sigma_min=-1.0",), None),
    (["schedule.options={{bogus: 1}}"], ("schedule.options", "bogus"), None),
    (["loss.options={{p_mean: 1.0, foo: 2}}"], ("loss.options ['foo'] not allowed",), None),
    (
        ["loss.name=dsm", "loss.options={{noise: {{name: nope}}}}"],
        ("loss.options.noise", "nope"),
        None,
    ),
    (["sample.n=0"], ("sample.n = 0 is out of range",), None),
    (["sample.batch=0"], ("sample.batch = 0 is out of range",), None),
    (["sample.steps=0"], ("sample.steps = 0 is out of range",), None),
    (["sample.n=-3"], ("sample.n = -3 is out of range",), None),
    (["evaluate.n_projections=0"], ("evaluate.n_projections = 0 must be >= 1",), None),
    (["evaluate.likelihood_n=-5"], ("evaluate.likelihood_n = -5 must be >= 0",), None),
    (["evaluate.fid_mode=tf"], ("evaluate.fid_mode = 'tf' must be 'clean' or",), None),
    (["evaluate.divergence=exactly"], ("evaluate.divergence = 'exactly' must be",), None),
    (["evaluate.seed=x"], ("config key evaluate.seed must be of type int",), None),
]:
    cli(
        "train",
        "value-" + "-".join(s.split("=")[0] for s in sets) + f"-{len(CASES)}",
        what or "`" + "`, `".join(s.replace("{{", "{").replace("}}", "}") for s in sets) + "`",
        *fragments,
        sets=sets,
    )

# -- sample and evaluate: the checkpoint's config, its samples ---------------------------------
CONTRA = "was trained with another config than this one"
cli(
    "sample",
    "sample-sigma-data",
    "`gmdiff sample --set model.sigma_data=0.5` on a run trained "
    "with 1.4 (exited 0, sampled a wrong model)",
    CONTRA,
    "model.sigma_data 1.4 -> 0.5",
    sets=["model.sigma_data=0.5"],
)
cli(
    "sample",
    "sample-ve",
    "`--set model.precond=ve` with a VE schedule on an EDM run",
    CONTRA,
    "model.precond 'edm' -> 've'",
    "schedule.name 'edm' -> 've'",
    sets=["model.precond=ve", "schedule.name=ve", "schedule.options={{}}"],
)
cli(
    "sample",
    "sample-data",
    "sampling with other data (`data.options.k: 4`)",
    CONTRA,
    "data.options.k 8 -> 4",
    sets=["data.options.k=4"],
)
cli(
    "sample",
    "sample-schedule",
    "sampling on another noise range (`sigma_max: 80`)",
    CONTRA,
    "schedule.options.sigma_max 20.0 -> 80.0",
    sets=["schedule.options.sigma_max=80.0"],
)
cli(
    "sample",
    "sample-loss",
    "sampling with another loss setting",
    CONTRA,
    "loss.options.p_mean (absent) -> 0.0",
    sets=["loss.options={{p_mean: 0.0}}"],
)
cli(
    "sample",
    "sample-net",
    "sampling with another network width",
    CONTRA,
    "model.overrides.width 32 -> 64",
    sets=["model.overrides.width=64"],
)
cli(
    "evaluate",
    "evaluate-sigma-data",
    "`gmdiff evaluate --set model.sigma_data=0.5`",
    "the samples {run}/samples.pt were drawn with another config",
    "model.sigma_data 1.4 -> 0.5",
    sets=["model.sigma_data=0.5"],
)
cli(
    "evaluate",
    "evaluate-data",
    "evaluating against other data (`data.options.radius: 3`)",
    "were drawn with another config",
    "data.options.radius 2.0 -> 3.0",
    sets=["data.options.radius=3.0"],
)
cli(
    "sample",
    "sample-weights",
    "`--weights 'as stored'` for a gmdiff checkpoint",
    "weights of a gmdiff checkpoint are 'ema' or 'raw', got 'as stored'",
    extra=["--weights", "as stored"],
)
cli(
    "sample",
    "sample-both",
    "`--checkpoint` and `--pretrained` together",
    "pass either --checkpoint or --pretrained, not both",
    extra=["--checkpoint", "{run}/checkpoint.pt", "--pretrained", "{run}"],
)
cli(
    "sample",
    "sample-no-ckpt",
    "`--checkpoint` naming a missing file",
    "no checkpoint at {tmp}/nope.pt",
    extra=["--checkpoint", "{tmp}/nope.pt"],
)


def _truncated_ckpt(env: Env) -> list[str]:
    data = (env.run / "checkpoint.pt").read_bytes()
    (env.tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return ["--checkpoint", str(env.tmp / "cut.pt")]


cli(
    "sample",
    "sample-truncated-ckpt",
    "a truncated checkpoint (was `[Errno 22] Invalid argument`, no file name)",
    "checkpoint {tmp}/cut.pt is",
    "corrupt",
    setup=_truncated_ckpt,
)


def _foreign_torch(env: Env) -> list[str]:
    torch.save({"weights": torch.zeros(3)}, env.tmp / "w.pt")
    return ["--checkpoint", str(env.tmp / "w.pt")]


cli(
    "sample",
    "sample-foreign-torch",
    "a torch file that is no training checkpoint",
    "{tmp}/w.pt is not a gmdiff training checkpoint",
    setup=_foreign_torch,
)
cli(
    "sample",
    "sample-options-of-other",
    "`sample.options: {strategy: standard}` for heun",
    "sample.options of sampler heun: got an unexpected keyword argument 'strategy'",
    sets=["sample.options={{strategy: standard}}"],
)
cli(
    "sample",
    "sample-gaussian-heun",
    "`sample.options: {gaussian: data}` for heun (not a teleporting sampler)",
    "sample.options of sampler heun",
    "'gaussian'",
    sets=["sample.options={{gaussian: data}}"],
)

# -- GM-DDPM: the reading of the means, the reverse variance ----------------------------------
GM_DDPM = ["model.net=gm_ddpm_toy_mlp", "model.precond=vp", "loss.name=gm_ddpm",
           "schedule.name=ddpm_cosine", "schedule.options={{T: 4}}"]  # fmt: skip
cli(
    "train",
    "gm-ddpm-per-coordinate-word",
    "`model.overrides.per_coordinate: maybe` (GM-DDPM)",
    "per_coordinate must be true or false",
    "'maybe'",
    sets=[*GM_DDPM, "model.overrides={{per_coordinate: maybe}}"],
)
cli(
    "train",
    "gm-ddpm-per-pixel-classifier",
    "the per-pixel reading (`per_coordinate: true`) with the classifier term of Alg. 1 on",
    "K-way classifier cannot predict",
    "set loss.options.classifier_weight: 0 (got 1.0)",
    sets=[*GM_DDPM, "model.overrides={{per_coordinate: true}}"],
)


def _gm_ddpm_sample(per_coordinate: bool = False, **options):
    from gmdiff.noise import OffsetMixtureNoise
    from gmdiff.samplers import gm_ddpm
    from gmdiff.schedules import DiscreteVP

    noise = OffsetMixtureNoise(per_coordinate=per_coordinate)
    return gm_ddpm(
        lambda x, s: x, DiscreteVP.cosine(T=4), torch.zeros(2, 2), 4, noise=noise, **options
    )


lib(
    "ncsnpp-scale-by-sigma-under-edm",
    "NCSN++ with scale_by_sigma wrapped in EDM's preconditioning",
    lambda env: __import__("gmdiff.runs").runs.build(
        __import__("gmdiff.cli").cli.load_config(
            "configs/ncsnpp_cifar10_ve.yaml", ["model.precond=edm", "model.sigma_data=0.5"]
        )
    ),
    "divides its output by exp(c_noise) (scale_by_sigma)",
    "set model.overrides.scale_by_sigma: false",
)
lib(
    "gm-ddpm-variance",
    "`sample.options.variance: eq35` for gm_ddpm",
    lambda env: _gm_ddpm_sample(variance="eq35"),
    "sample.options.variance must be one of ('eq30', 'eq34')",
    "'eq35'",
)
lib(
    "gm-ddpm-per-pixel-standard",
    "Alg. 2 (`strategy: standard`) under the per-pixel reading",
    lambda env: _gm_ddpm_sample(per_coordinate=True),
    "strategy 'standard' reads i_t from a K-way classifier",
    "use 'ddpm', 'keep_mu' or 'random'",
)


def damage_samples(make: Callable[[Path], None]) -> Callable[[Env], list[str]]:
    def setup(env: Env) -> list[str]:
        run = env.copy_run()
        make(run / "samples.pt")
        return []

    return setup


def _edit_record(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        record = torch.load(path, weights_only=True)
        torch.save(edit(record), path)

    return make


def _with(key: str, value) -> Callable[[dict], dict]:
    return lambda r: r | {key: value}


AGAIN = "run `gmdiff sample` again"
for id_, what, make, fragments in [
    (
        "plain-tensor",
        "a samples.pt saved as a plain tensor",
        _edit_record(lambda r: r["samples"]),
        ("it holds a Tensor", AGAIN),
    ),
    (
        "truncated",
        "a truncated samples.pt (was `[Errno 22] Invalid argument`)",
        lambda p: p.write_bytes(p.read_bytes()[:300]),
        ("{run}/samples.pt is truncated", AGAIN),
    ),
    (
        "garbage",
        "a samples.pt that is not a torch file",
        lambda p: p.write_bytes(b"not torch"),
        ("{run}/samples.pt is truncated or not a torch",),
    ),
    (
        "nan",
        "NaN samples (metrics were NaN, exit 0)",
        _edit_record(
            lambda r: r | {"samples": r["samples"].index_fill(0, torch.tensor([3]), float("nan"))}
        ),
        ("holds NaN or inf in 1 of 32 samples",),
    ),
    (
        "inf",
        "an infinite sample",
        _edit_record(lambda r: r | {"samples": r["samples"] * torch.inf}),
        ("holds NaN or inf in 32 of 32 samples",),
    ),
    (
        "no-samples-key",
        "a dict without 'samples'",
        _edit_record(lambda r: {k: v for k, v in r.items() if k != "samples"}),
        ("is not a samples file of `gmdiff sample`", "keys ["),
    ),
    (
        "int-samples",
        "integer samples",
        _edit_record(_with("samples", torch.zeros(32, 2, dtype=torch.int64))),
        ("samples of dtype torch.int64, expected floats",),
    ),
    (
        "empty-samples",
        "zero samples",
        _edit_record(_with("samples", torch.zeros(0, 2))),
        ("is not a samples file",),
    ),
    (
        "no-provenance",
        "samples.pt of an older gmdiff, without provenance",
        _edit_record(lambda r: {k: v for k, v in r.items() if "sha256" not in k}),
        ("records no checkpoint or pretrained model", AGAIN),
    ),
    (
        "other-checkpoint",
        (
            "samples of another checkpoint (after `train --no-resume`, evaluate "
            "reported the old model's metrics)"
        ),
        _edit_record(_with("checkpoint_sha256", "0123456789abcdef")),
        ("was drawn from checkpoint", "sha256 0123456789abcdef", "is now another model"),
    ),
]:
    cli("evaluate", f"evaluate-{id_}", what, *fragments, setup=damage_samples(make))


def _other_ckpt(env: Env) -> list[str]:
    other = env.tmp / "other"
    write_config(env.tmp / "o.yaml", other, train={"seed": 1})
    assert main(["train", "--config", str(env.tmp / "o.yaml")]) == 0
    return ["--checkpoint", str(other / "checkpoint.pt")]


cli(
    "evaluate",
    "evaluate-checkpoint-flag",
    "`evaluate --checkpoint` naming another checkpoint than the samples'",
    "was drawn from checkpoint {run}/checkpoint.pt at step 4",
    "is now another model",
    setup=_other_ckpt,
)
cli(
    "evaluate",
    "evaluate-pretrained-missing",
    "`evaluate --pretrained` naming a missing file",
    "{tmp}/none.pt",
    "No such file",
    extra=["--pretrained", "{tmp}/none.pt"],
)


def npz(mu, sigma, name="ref_clean.npz", **more) -> Callable[[Env], list[str]]:
    def setup(env: Env) -> list[str]:
        np.savez(env.tmp / name, mu=mu, sigma=sigma, **more)
        return ["--set", f"evaluate.fid_reference={env.tmp / name}"]

    return setup


lib(
    "fid-missing",
    "an FID reference that does not exist",
    lambda env: __import__("gmdiff.evaluation").evaluation._reference_stats(
        env.tmp / "nope", "clean", None
    ),
    "FID reference {tmp}/nope is neither a folder",
    exc=FileNotFoundError,
)
cli(
    "evaluate",
    "fid-toy",
    "FID of 2-D toy samples",
    "FID needs images (N, C, H, W)",
    setup=npz(np.zeros(2048), np.eye(2048)),
)
for id_, mu, sigma, fragment in [
    ("nan-mu", np.full(2048, np.nan), np.eye(2048), "mu holds NaN or inf"),
    ("inf-sigma", np.zeros(2048), np.full((2048, 2048), np.inf), "sigma holds NaN or inf"),
    ("shape", np.zeros(10), np.eye(10), "mu (10,) and sigma (10, 10) are not the statistics"),
    ("strings", np.array(["a"] * 2048), np.eye(2048), "mu holds NaN or inf values (or is not"),
]:
    lib(
        f"fid-npz-{id_}",
        f"FID statistics .npz: {id_}",
        lambda env, mu=mu, sigma=sigma: _stats(env, mu, sigma),
        "ref_clean.npz",
        fragment,
    )


def _stats(env: Env, mu, sigma):
    from gmdiff.evaluation import _reference_stats

    np.savez(env.tmp / "ref_clean.npz", mu=mu, sigma=sigma)
    return _reference_stats(env.tmp / "ref_clean.npz", "clean", None)


lib(
    "fid-npz-keys",
    "FID statistics .npz without mu/sigma",
    lambda env: (
        np.savez(env.tmp / "r.npz", m=np.zeros(3)),
        __import__("gmdiff.evaluation").evaluation._reference_stats(
            env.tmp / "r.npz", "clean", None
        ),
    ),
    "expected arrays 'mu' and 'sigma'",
)

# -- the out_dir's lock files -----------------------------------------------------------------


def _planted(kind: str, name: str = ".lock") -> Callable[[Env], list[str]]:
    def setup(env: Env) -> list[str]:
        run = env.copy_run()
        (run / name).unlink(missing_ok=True)
        victim = env.tmp / "victim.txt"
        victim.write_text("someone else's file\n")
        if kind == "symlink":
            (run / name).symlink_to(victim)
        elif kind == "hardlink":
            os.link(victim, run / name)
        else:
            os.mkfifo(run / name)
        return ["--set", "train.steps=6"]

    return setup


def _victim_intact(env: Env) -> None:
    assert (env.tmp / "victim.txt").read_text() == "someone else's file\n"


for kind, fragment in [
    ("symlink", "is a symbolic link, which gmdiff does not follow"),
    ("hardlink", "is a hard link, which gmdiff does not write to"),
    ("fifo", "is not a regular file"),
]:
    cli(
        "train",
        f"lock-{kind}",
        f"`<out>/.lock` planted as a {kind} (a symlink overwrote a foreign file)"
        if kind == "symlink"
        else f"`<out>/.lock` planted as a {kind}",
        "{run}/.lock",
        fragment,
        setup=_planted(kind),
        after=_victim_intact,
    )
cli(
    "sample",
    "sample-lock-symlink",
    "`<out>/.sample.lock` planted as a symlink",
    "{run}/.sample.lock",
    "symbolic link",
    setup=_planted("symlink", ".sample.lock"),
    after=_victim_intact,
)


# -- data -------------------------------------------------------------------------------------


def _cifar(env: Env, batch: bytes | None = None, name: str = "data_batch_1") -> Path:
    folder = env.tmp / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / n).write_bytes(pickle.dumps(good, protocol=2))
    if batch is not None:
        (folder / name).write_bytes(batch)
    return env.tmp


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _load_cifar(env: Env, batch: bytes) -> object:
    from gmdiff.data import load_cifar10

    return load_cifar10(_cifar(env, batch))


def _no_payload_ran(env: Env) -> None:
    assert not (env.tmp / "pwned").exists()


lib(
    "cifar-payload",
    "a CIFAR-10 batch holding a pickled payload (`os.system`; was run by `pickle.load`)",
    lambda env: _load_cifar(env, pickle.dumps({b"data": _Payload(env.tmp / "pwned")})),
    "data_batch_1 is not a readable CIFAR-10 batch",
    "system",
    after=_no_payload_ran,
)
lib(
    "cifar-payload-eval",
    "a CIFAR-10 batch calling `builtins.eval`",
    lambda env: _load_cifar(env, b"cbuiltins\neval\n(S'1+1'\ntR."),
    "builtins.eval, which a CIFAR-10 batch never holds",
)
lib(
    "cifar-truncated",
    "a truncated CIFAR-10 batch (a broken download)",
    lambda env: _load_cifar(env, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:40]),
    "data_batch_1 is not a readable CIFAR-10 batch",
    "download and extract",
)
lib(
    "cifar-shape",
    "a CIFAR-10 batch of 32x32 grey images",
    lambda env: _load_cifar(
        env, pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})
    ),
    "is not a CIFAR-10 batch: expected b'data' (N, 3072) uint8",
)
lib(
    "cifar-labels",
    "CIFAR-10 labels outside 0..9",
    lambda env: _load_cifar(
        env, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]})
    ),
    "holds labels outside 0..9",
)
lib(
    "cifar-count",
    "CIFAR-10 labels fewer than images",
    lambda env: _load_cifar(
        env, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    ),
    "is not a CIFAR-10 batch",
)
lib(
    "cifar-list",
    "a CIFAR-10 batch holding a list",
    lambda env: _load_cifar(env, pickle.dumps([1, 2])),
    "is not a CIFAR-10 batch",
    "got list",
)
lib(
    "cifar-text",
    "a CIFAR-10 batch that is a text file",
    lambda env: _load_cifar(env, b"<html>404 not found</html>"),
    "data_batch_1 is not a readable CIFAR-10 batch",
)


def _folder(env: Env, sizes=((4, 4), (5, 5))) -> Path:
    from PIL import Image

    folder = env.tmp / "f"
    folder.mkdir()
    for i, s in enumerate(sizes):
        Image.fromarray(np.zeros(s, np.uint8)).save(folder / f"{i}.png")
    return folder


def _load_folder(path: Path):
    from gmdiff.images import load_folder

    return load_folder(path)


lib(
    "folder-missing",
    "an FID reference folder that does not exist",
    lambda env: _load_folder(env.tmp / "nope"),
    "image folder not found: {tmp}/nope",
    exc=FileNotFoundError,
)
lib(
    "folder-empty",
    "an FID reference folder without images",
    lambda env: _load_folder(env.tmp),
    "holds no images",
)
lib(
    "folder-sizes",
    "reference images of two sizes",
    lambda env: _load_folder(_folder(env)),
    "images differ in size or channels",
)


def _float_png(env: Env):
    from PIL import Image

    from gmdiff.images import eight_bit

    return eight_bit(Image.fromarray(np.zeros((2, 2), np.float32)), env.tmp / "x.tiff")


lib(
    "image-float",
    "a floating-point image (PIL mode F)",
    _float_png,
    "{tmp}/x.tiff: a floating-point image (PIL mode F)",
    "convert it to 8-bit PNG",
)


def _idx(env: Env):
    from gmdiff.data import load_mnist

    (env.tmp / "train-images-idx3-ubyte").write_bytes(b"\x00" * 32)
    return load_mnist(env.tmp)


lib(
    "mnist-magic",
    "an MNIST file with the wrong magic number",
    _idx,
    "train-images-idx3-ubyte is not an IDX image file (magic 0, expected 2051)",
)

# -- library values ---------------------------------------------------------------------------


def _train_config(**kw):
    from gmdiff.train import TrainConfig

    return TrainConfig(**{"steps": 1, "batch_size": 1} | kw)


lib(
    "lib-adam-betas",
    "`TrainConfig(adam_betas=(0.9,))`",
    lambda env: _train_config(adam_betas=(0.9,)),
    "train.adam_betas = (0.9,) must be two",
)
lib(
    "lib-adam-betas-neg",
    "`TrainConfig(adam_betas=(-0.1, 0.9))`",
    lambda env: _train_config(adam_betas=(-0.1, 0.9)),
    "must be two numbers in [0, 1)",
)
lib(
    "lib-device",
    "`device_of_config('gpu0')`",
    lambda env: __import__("gmdiff.distributed").distributed.device_of_config("gpu0"),
    "train.device = 'gpu0' is not a device",
)
lib(
    "lib-net-override",
    "`nets.get_config('digits', ch=32.5)`",
    lambda env: __import__("gmdiff.nets").nets.get_config("digits", ch=32.5),
    "ch must be a whole number like its default 32, got 32.5",
)
lib(
    "lib-net-override-tuple",
    "`nets.get_config('digits', ch_mult=2)`",
    lambda env: __import__("gmdiff.nets").nets.get_config("digits", ch_mult=2),
    "ch_mult must be a list like its default (1, 2), got 2",
)
lib(
    "lib-hflip",
    "`random_hflip(x, g, p=2)`",
    lambda env: __import__("gmdiff.data").data.random_hflip(
        torch.zeros(1, 1, 2, 2), torch.Generator(), 2.0
    ),
    "p must be a probability in [0, 1], got 2.0",
)
lib(
    "lib-ring",
    "`ring2d(k=0)`",
    lambda env: __import__("gmdiff.data").data.ring2d(0),
    "k must be >= 1, got 0",
)


# -- papermill parameters -------------------------------------------------------------------


def _papermill(chapter: str, **params):
    import jupytext
    import papermill  # noqa: F401 -- loads our handler first (import order)

    from gmdiff.papermill_io import check_values

    nb = jupytext.read(ROOT / "notebooks" / f"{chapter}.py")
    nb.metadata["papermill"] = {"parameters": params, "input_path": f"notebooks/{chapter}.py"}
    check_values(nb)


for id_, chapter, params, fragment in [
    (
        "seed-word",
        "gs_far_field",
        {"seed": "abc"},
        "parameter seed must be a whole number, like its default 0, got 'abc'",
    ),
    ("seed-float", "gs_far_field", {"seed": 1.5}, "parameter seed must be a whole number"),
    ("seed-bool", "gs_far_field", {"seed": True}, "parameter seed must be a whole number"),
    (
        "profile-caps",
        "gs_far_field",
        {"profile": "FULL"},
        "parameter profile must be one of ['ci', 'long', 'full'], got 'FULL'",
    ),
    ("profile-number", "gs_far_field", {"profile": 1}, "parameter profile must be text"),
    (
        "data-dir-ci",
        "gm_sgm_tables",
        {"data_dir": "/data"},
        "parameter data_dir is read by the full profile only",
    ),
    (
        "dataset-ci",
        "gm_sgm_tables",
        {"dataset": "celeba64"},
        "parameter dataset is read by the full profile only",
    ),
    (
        "data-dir-number",
        "gm_sgm_tables",
        {"profile": "full", "data_dir": 2024},
        "parameter data_dir must be text (-r NAME VALUE",
    ),
    (
        "data-dir-unused",
        "gmd_forward",
        {"profile": "full", "data_dir": "/data"},
        "no cell reads parameter data_dir",
    ),
    (
        "data-dir-ci-teleport",
        "gs_teleportation",
        {"data_dir": "/mnist"},
        "data_dir is read by the full profile only",
    ),
]:
    lib(
        f"papermill-{id_}",
        f"`papermill notebooks/{chapter}.py out.ipynb "
        + " ".join(f"-p {k} {v}" for k, v in params.items())
        + "`",
        lambda env, c=chapter, p=params: _papermill(c, **p),
        f"notebooks/{chapter}.py",
        fragment,
    )


# ----------------------------------------------------------------------------------------------


def _run_case(case: Case, env: Env, capsys) -> str:
    if case.argv is not None:
        argv = case.argv(env)
        before = snapshot(env.run)
        capsys.readouterr()
        status = main(argv)
        err = capsys.readouterr().err
        assert status == 1, (status, err)
        assert err.count("\n") == 1 and err.startswith(f"gmdiff {argv[0]}: error: "), err
        assert snapshot(env.run) == before, "the run's files changed"
        return err.removeprefix(f"gmdiff {argv[0]}: error: ").strip()
    with pytest.raises(case.exc) as info:
        case.call(env)
    text = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    assert "\n" not in text.strip(), text
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_sentence(case, trained, tmp_path, capsys):
    env = Env(trained, tmp_path)
    text = _run_case(case, env, capsys)
    for fragment in case.expect:
        assert env.fill(fragment) in text, (fragment, text)
    short = text.replace(str(env.tmp), "{tmp}").replace(str(env.base), "{base}")
    assert len(short) < 600, f"not one sentence: {len(short)} characters (paths shortened)"
    if case.after is not None:
        case.after(env)


def test_enough_cases_and_unique_ids():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


def markdown_table() -> str:
    """The table of cases, as book/reliability.md shows it."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| case | bad input | raised by | the sentence contains |", "|---|---|---|---|"]
    for c in CASES:
        where = "`gmdiff`, exit 1" if c.argv is not None else f"library, `{c.exc.__name__}`"
        frags = "; ".join(f"`{f}`" for f in c.expect)
        rows.append(f"| `{c.id}` | {cell(c.what)} | {where} | {cell(frags)} |")
    return "\n".join(rows)


def _book_block() -> str:
    return (
        f"{START}\n{len(CASES)} cases, each a parameter of "
        "`test_bad_inputs.py::test_bad_input_gets_one_sentence` (this table is generated from "
        "the test's; `{run}` is the case's run folder, `{tmp}` its temp folder).\n\n"
        f"{markdown_table()}\n{END}"
    )


def test_the_book_lists_every_case():
    text = BOOK.read_text()
    block = text[text.index(START) : text.index(END) + len(END)]
    assert block == _book_block(), (
        "book/reliability.md is out of date: PYTHONPATH=src python tests/test_bad_inputs.py --write"
    )


# -- what the table cannot show -----------------------------------------------------------------


def _image_run(base: Path, n: int = 12) -> list[str]:
    return [
        "--config", str(ROOT / "configs" / "digits_edm.yaml"),
        "--set", f"out_dir={base}",
        "--set", "model.overrides={ch: 8}",
        "--set", "train.steps=2",
        "--set", "train.batch_size=8",
        "--set", "train.log_every=1",
        "--set", f"sample.n={n}",
        "--set", "sample.steps=2",
        "--set", "sample.batch=8",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("images") / "run"
    torch.set_num_threads(1)
    assert main(["train", *_image_run(out)]) == 0
    return out


def test_every_output_records_its_checkpoint_and_sampler(image_run, tmp_path):
    """samples.pt, each PNG, grid.png and metrics.json name the checkpoint (path, hash,
    step) and the sampler settings; a re-sample with fewer samples leaves no old PNG."""
    from PIL import Image

    from gmdiff.commands import digest

    out = image_run
    assert main(["sample", *_image_run(out, n=12)]) == 0
    assert max(p.name for p in (out / "images").iterdir()) == "000011.png"
    assert main(["sample", *_image_run(out, n=5), "--set", "sample.seed=3"]) == 0
    pngs = sorted((out / "images").iterdir())
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(5)]
    record = torch.load(out / "samples.pt", weights_only=True)
    sha = digest(out / "checkpoint.pt")
    expected = {"checkpoint": str(out / "checkpoint.pt"), "checkpoint_sha256": sha, "step": 2,
                "sampler": "heun", "steps": 2, "n": 5, "batch": 8, "seed": 3}  # fmt: skip
    assert expected.items() <= record.items()
    assert record["run_config"]["model.overrides.ch"] == 8
    for png in [*pngs, out / "grid.png"]:
        with Image.open(png) as im:
            meta = json.loads(im.text["gmdiff"])
        assert expected.items() <= meta.items(), png
    assert not list(out.glob(".sample-*"))
    assert main(["evaluate", *_image_run(out, n=5)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert expected.items() <= metrics["provenance"].items()
    # retrained from scratch (train --no-resume): the old samples are refused
    assert main(["train", *_image_run(out), "--set", "train.steps=3", "--no-resume"]) == 0
    assert main(["evaluate", *_image_run(out, n=5)]) == 1


def _slow_export(argv: list[str], after: int, ready: Path) -> None:
    """A forked ``gmdiff sample`` whose PNG export stops (sleeps) after ``after`` files."""
    from PIL import Image

    save, count = Image.Image.save, [0]

    def slow(self, fp, *a, **k):
        count[0] += 1
        if count[0] == after:
            ready.write_text("1")
            time.sleep(60)
        return save(self, fp, *a, **k)

    Image.Image.save = slow
    os._exit(main(argv))


def test_sigkill_during_png_export_leaves_the_old_outputs(image_run):
    """A SIGKILL in the middle of writing the PNGs of a re-sample leaves the previous
    outputs whole (same files, no 0-byte PNG, samples.pt of the same sampling); the next
    sample removes the staging folder the kill left."""
    out = image_run
    assert main(["sample", *_image_run(out, n=6)]) == 0
    before = snapshot(out)
    ready = out.parent / "ready"
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        _slow_export(["sample", *_image_run(out, n=10), "--set", "sample.seed=7"], 4, ready)
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the child never reached the export"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    kept = lambda snap: {k: v for k, v in snap.items() if not k.startswith(".sample")}
    assert kept(snapshot(out)) == kept(before)
    assert all(p.stat().st_size > 0 for p in (out / "images").iterdir())
    assert list(out.glob(".sample-*.tmp"))  # the kill left its staging folder ...
    assert main(["sample", *_image_run(out, n=6)]) == 0
    assert not list(out.glob(".sample-*.tmp"))  # ... which the next sample removed
    pngs = lambda snap: {k: v for k, v in snap.items() if k.endswith(".png")}
    assert pngs(snapshot(out)) == pngs(before)  # the same config gives the same images


#: What a killed ``gmdiff sample`` can be stopped before: writing a PNG, a rename (of a
#: temp file, of the commit record, of an output) or a deletion.
_MOMENTS = (("os", "rename"), ("os", "replace"), ("os", "unlink"))


def _killed_sample(argv: list[str], at: int, count_file: Path) -> None:
    """A forked ``gmdiff sample`` that SIGKILLs itself just before its ``at``-th moment
    (:data:`_MOMENTS` and every PNG save); with ``at`` < 0 it runs through and writes the
    number of moments to ``count_file``."""
    from PIL import Image

    count = [0]

    def counted(fn):
        def call(*a, **k):
            count[0] += 1
            if count[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)

        return call

    for module, name in _MOMENTS:
        setattr(os, name, counted(getattr(os, name)))
    Image.Image.save = counted(Image.Image.save)
    code = main(argv)
    count_file.write_text(str(count[0]))
    os._exit(code)


def _fork(argv: list[str], at: int, count_file: Path) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        _killed_sample(argv, at, count_file)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_any_moment_of_a_resample_leaves_old_or_new_outputs(image_run, tmp_path, seed):
    """A re-sample killed just before any rename, deletion or PNG write (every move and
    commit moment, plus seeded random PNG writes) leaves, once the next command has
    finished its move (``finish_sample_outputs``, as ``sample`` and ``evaluate`` do), the
    old outputs whole or the new ones whole, the old up to the commit record's rename
    and the new from it on, and no staging folder."""
    import random

    from gmdiff.commands import SAMPLE_COMMIT, finish_sample_outputs, remove_staging

    base, out = tmp_path / "base", tmp_path / "run"  # every sample runs in `out`: the
    shutil.copytree(image_run, base, symlinks=True)  # outputs record their folder

    def fresh() -> Path:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(base, out, symlinks=True)
        return out

    assert main(["sample", *_image_run(fresh(), n=6)]) == 0
    shutil.rmtree(base)
    shutil.copytree(out, base, symlinks=True)
    hidden = lambda snap: {k: v for k, v in snap.items() if not k.startswith(".")}
    old = hidden(snapshot(out))
    argv = ["sample", *_image_run(out, n=10), "--set", "sample.seed=7"]
    assert _fork(argv, -1, tmp_path / "count") == 0
    total = int((tmp_path / "count").read_text())
    new = hidden(snapshot(out))
    assert new != old and not list(out.glob(".sample*.tmp"))
    first_move = 13  # samples.pt's temp file, 10 PNGs and the grid are written first
    rng = random.Random(seed)
    picks = sorted({*range(first_move, total + 1), *rng.sample(range(1, first_move), 3)})
    outcomes = []
    for at in picks:
        fresh()
        assert _fork(argv, at, tmp_path / "unused") == signal.SIGKILL, at
        committed = (out / SAMPLE_COMMIT).exists()
        finish_sample_outputs(out)
        remove_staging(out)
        state = hidden(snapshot(out))
        assert state in (old, new), f"killed at moment {at} of {total}: a mix of outputs"
        assert {p.name for p in out.glob(".sample*")} <= {".sample.lock"}
        assert not committed or state == new
        outcomes.append(state == new)
    assert outcomes == sorted(outcomes)  # old ... old, new ... new: one switch
    assert outcomes[0] is False and outcomes[-1] is True, (picks, outcomes)


def test_ctrl_c_names_the_kept_checkpoint(tmp_path, capsys, monkeypatch):
    from gmdiff.train import Trainer

    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run",
                       train={"steps": 8, "ckpt_every": 2})  # fmt: skip
    step = Trainer._train_step

    def interrupted(self, k, *a):
        if k == 5:
            raise KeyboardInterrupt
        return step(self, k, *a)

    monkeypatch.setattr(Trainer, "_train_step", interrupted)
    assert main(["train", "--config", str(cfg)]) == 130
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"gmdiff train: stopped; checkpoint at step 4 kept ({tmp_path}/run/checkpoint.pt); "
        "rerun the command to resume"
    )
    assert "Traceback" not in err


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
        assert main(["train", "--config", str(cfg)]) == 0
        assert main(["sample", "--config", str(cfg)]) == 0
        assert main(["evaluate", "--config", str(cfg)]) == 0
    finally:
        os.umask(old)
    for name in ("checkpoint.pt", "config.yaml", "samples.pt", "metrics.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o640, name


def test_progress_lines_without_a_terminal(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
    assert main(["train", "--config", str(cfg)]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train: ")]
    assert [re.sub(r", loss .*", "", ln) for ln in lines] == [
        "train: step 2/4",
        "train: step 4/4",
    ]


def test_gm_ddpm_toy_samples_with_ddim_as_documented(tmp_path):
    """configs/gm_ddpm_toy.yaml's documented `--set sample.sampler=ddim --set sample.steps=10`
    (was `unexpected keyword argument 'strategy'`): the file's gm_ddpm options are dropped."""
    args = [
        "--config", str(ROOT / "configs" / "gm_ddpm_toy.yaml"),
        "--set", f"out_dir={tmp_path}",
        "--set", "train.steps=2",
        "--set", "train.batch_size=16",
        "--set", "sample.n=16",
    ]  # fmt: skip
    assert main(["train", *args]) == 0
    assert main(["sample", *args, "--set", "sample.sampler=ddim", "--set", "sample.steps=10"]) == 0
    record = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert record["sampler"] == "ddim" and record["options"] == {}
    assert main(["sample", *args, "--set", "sample.options.strategy=random"]) == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        text = BOOK.read_text()
        new = text[: text.index(START)] + _book_block() + text[text.index(END) + len(END) :]
        BOOK.write_text(new)
    else:
        print(_book_block())
