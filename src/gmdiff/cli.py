"""``gmdiff train|sample|evaluate --config configs/<run>.yaml``: the command line.

A run config is one YAML file with these sections (every key is checked; an unknown key
raises an error naming it):

``out_dir``   where checkpoint.pt, train_log.jsonl, config.yaml, samples.pt and
              metrics.json go (and .lock, held by the run training there).
``data``      ``name`` (ring2d, grid2d, digits8x8, mnist5k, cifar10, celeba64, lsun),
              ``options`` (arguments of that loader, e.g. ``data_dir``), ``hflip``
              (random horizontal flips), ``centered`` (false: images in [0, 1] instead
              of [-1, 1], as score_sde's VE models).
``model``     ``net`` (a name in ``gmdiff.nets.CONFIGS``), ``overrides`` (its fields),
              ``precond`` (edm, ve, score, vp: how the raw net becomes D(x, sigma)),
              ``sigma_data`` (EDM preconditioning and loss).
``loss``      ``name`` (edm, dsm, eps, smd, gm_ddpm) and ``options`` (edm: p_mean, p_std;
              smd: n_eta, reduction, temperature; gm_ddpm: classifier_weight; GM-DDPM's
              offsets, lam and direction, are fields of its net config in ``model``).
``schedule``  ``name`` (edm, ve, vp_linear, ddpm_linear, ddpm_cosine) and ``options``:
              the noise process of the dsm/eps/smd losses and of sampling.
``train``     the fields of :class:`gmdiff.train.TrainConfig`.
``sample``    ``sampler`` (a name in ``gmdiff.samplers.SAMPLERS``), ``steps``, ``n``,
              ``batch``, ``seed``, ``options`` (sampler keywords).
``evaluate``  ``n_projections`` and ``seed`` of the sliced Wasserstein distance.

Any key can be overridden with ``--set section.key=value`` (value parsed as YAML).
Numbers: a float key also takes a string that parses as a float, since YAML 1.1 reads
``1e-3`` (no dot) as the string "1e-3"; true/false are refused where a number is expected.

A run is its config: the network is initialised from ``train.seed`` and every training
step draws from seeds derived from it, so two runs of one config give the same weights.
``train`` resumes from out_dir's checkpoint only when it was written by the same data,
model, loss, schedule and train sections (``train.steps`` may grow; see
:data:`gmdiff.train.RESUMABLE`), and writes ``config.yaml`` only after that check.

Errors. A bad input (a config value, a missing or unreadable file, an out_dir in use or
not writable) prints one sentence on stderr naming the culprit and exits with status 1;
``--debug`` raises it with its traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import tempfile
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from gmdiff.train import (
    TrainConfig,
    Trainer,
    atomic_save,
    atomic_write,
    errors_naming,
    load_checkpoint,
    remove_orphans,
)

# --------------------------------------------------------------------------------------
# Config schema
# --------------------------------------------------------------------------------------


@dataclass
class DataSection:
    name: str
    options: dict = field(default_factory=dict)
    hflip: bool = False
    centered: bool = True


@dataclass
class ModelSection:
    net: str
    overrides: dict = field(default_factory=dict)
    precond: str = "edm"
    sigma_data: float = 0.5


@dataclass
class LossSection:
    name: str = "edm"
    options: dict = field(default_factory=dict)


@dataclass
class ScheduleSection:
    name: str = "edm"
    options: dict = field(default_factory=dict)


@dataclass
class SampleSection:
    sampler: str = "heun"
    steps: int = 18
    n: int = 64
    batch: int = 1024
    seed: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class EvaluateSection:
    n_projections: int = 256
    seed: int = 0


@dataclass
class RunConfig:
    out_dir: str
    data: DataSection
    model: ModelSection
    train: TrainConfig
    loss: LossSection = field(default_factory=LossSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    sample: SampleSection = field(default_factory=SampleSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)


_SCALARS = (bool, int, float, str, dict)
_HINTS = {int: " (a whole number, not true/false)", float: " (a number such as 0.001 or 1e-3)"}


def _typed(value: Any, t: type, path: str) -> Any:
    """``value`` checked against the scalar type ``t`` of config key ``path``.

    A bool is refused where a number is expected (bool is an int subclass, so
    ``steps: true`` would be 1 step). A float key takes an int or a string that parses as
    a float, as YAML 1.1 reads ``1e-3`` (no dot) as a string; it returns a float.
    """
    if isinstance(value, bool) and t is not bool:
        pass  # refused below
    elif t is float and isinstance(value, int | float | str):
        with contextlib.suppress(ValueError):
            return float(value)
    elif isinstance(value, t):
        return value
    raise ValueError(
        f"config key {path} must be of type {t.__name__}{_HINTS.get(t, '')}, got {value!r}"
    )


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested sections and
    naming any unknown, missing or mistyped key by its dotted path."""
    if not isinstance(raw, dict):
        raise ValueError(f"config section {where or '<top>'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        keys = ", ".join(f"{where}.{k}".lstrip(".") for k in unknown)
        raise ValueError(f"unknown config key(s) {keys}; allowed here: {names}")
    kwargs = {}
    for k, v in raw.items():
        path, t = f"{where}.{k}".lstrip("."), hints[k]
        if is_dataclass(t):
            v = _build(t, v, path)
        elif t in _SCALARS:
            v = _typed(v, t, path)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as err:  # a missing required key
        raise ValueError(f"config section {where or '<top>'}: {err}") from None


def _parse_yaml(text: str, where: str) -> Any:
    """yaml.safe_load, a syntax error becoming one sentence naming ``where`` and the place."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark, context = getattr(err, "problem_mark", None), getattr(err, "context", None)
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        if context and err.context_mark:
            problem += f" ({context} at line {err.context_mark.line + 1})"
        raise ValueError(f"{where} is not valid YAML{at}: {problem}") from err


def _apply_set(raw: dict, assignment: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to the raw config."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects section.key=value, got {assignment!r}")
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {assignment!r}: {p} is not a section")
    node[leaf] = _parse_yaml(value, f"the value of --set {assignment!r}")


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found; see configs/ for examples")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text") from None
    raw = _parse_yaml(text, f"config file {path}")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections, got {raw!r}")
    for assignment in overrides:
        _apply_set(raw, assignment)
    return _build(RunConfig, raw, "")


def _call(fn: Callable, options: dict, where: str, *args: Any, **fixed: Any) -> Any:
    """fn(*args, **fixed, **options), turning a bad option into an error naming ``where``."""
    clash = sorted(set(options) & set(fixed))
    if clash:
        raise ValueError(f"{where}: {clash} are set by the command, not by the config")
    try:
        inspect.signature(fn).bind_partial(*args, **fixed, **options)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None
    return fn(*args, **fixed, **options)


def _pick(registry: dict, name: str, where: str) -> Any:
    if name not in registry:
        raise ValueError(f"{where} = {name!r} is not known; choose one of {sorted(registry)}")
    return registry[name]


# --------------------------------------------------------------------------------------
# Building the pieces (nets, data and samplers are imported lazily)
# --------------------------------------------------------------------------------------


def _schedule(cfg: RunConfig):
    from gmdiff.schedules import EDM, VE, DiscreteVP, VPLinear

    registry = {
        "edm": EDM,
        "ve": VE,
        "vp_linear": VPLinear,
        "ddpm_linear": DiscreteVP.linear,
        "ddpm_cosine": DiscreteVP.cosine,
    }
    fn = _pick(registry, cfg.schedule.name, "schedule.name")
    return _call(fn, cfg.schedule.options, "schedule.options")


def _data(cfg: RunConfig) -> tuple[Any, Any]:
    """(training data: tensor, dataset or sampler; the analytic model of a toy or None)."""
    from gmdiff import data

    toys = {"ring2d": data.ring2d, "grid2d": data.grid2d}
    images = {
        "digits8x8": lambda: data.digits8x8()[0],
        "mnist5k": lambda: data.mnist5k()[0],
        "cifar10": lambda data_dir, train=True: data.load_cifar10(data_dir, train)[0],
        "celeba64": data.load_celeba64,
        "lsun": data.load_lsun,
    }
    name = cfg.data.name
    fn = _pick(toys | images, name, "data.name")
    loaded = _call(fn, cfg.data.options, "data.options")
    if name in toys:
        return (lambda n, g: loaded.sample(n, generator=g).float()), loaded
    return loaded, None


def _transform(cfg: RunConfig) -> Callable[[Tensor, torch.Generator], Tensor] | None:
    from gmdiff.data import random_hflip

    if not cfg.data.hflip and cfg.data.centered:
        return None

    def transform(x: Tensor, g: torch.Generator) -> Tensor:
        x = random_hflip(x, g) if cfg.data.hflip else x
        return x if cfg.data.centered else (x + 1) / 2

    return transform


def _models(cfg: RunConfig, schedule) -> tuple[nn.Module, nn.Module, Any]:
    """(the module the trainer optimises, the denoiser D(x, sigma) built on it, its net
    config). For the eps and smd losses the trained module is the raw eps network and the
    denoiser wraps it in VPPrecond; otherwise both are the preconditioned denoiser."""
    from gmdiff import nets
    from gmdiff.schedules import DiscreteVP, VPLinear

    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    net_cfg = nets.get_config(cfg.model.net, **overrides)
    net = nets.build_net(net_cfg, seed=cfg.train.seed)  # a run is determined by its config
    wrappers = {
        "edm": lambda n: nets.EDMPrecond(n, cfg.model.sigma_data),
        "ve": nets.VEPrecond,
        "score": nets.ScorePrecond,
        "vp": lambda n: nets.VPPrecond(n, schedule),
    }
    wrap = _pick(wrappers, cfg.model.precond, "model.precond")
    if cfg.model.precond == "vp" and not isinstance(schedule, DiscreteVP | VPLinear):
        raise ValueError(
            "model.precond = 'vp' needs a VP schedule (schedule.name vp_linear, ddpm_linear "
            f"or ddpm_cosine), got schedule.name = {cfg.schedule.name!r}"
        )
    if cfg.loss.name == "gm_ddpm" and not isinstance(net_cfg, nets.GMDDPMConfig):
        raise ValueError(
            f"loss.name = 'gm_ddpm' trains a GM-DDPM network (eps net + component classifier); "
            f"model.net = {cfg.model.net!r} is not one (choose a gm_ddpm_* config)"
        )
    if cfg.loss.name in ("eps", "smd", "gm_ddpm"):
        if cfg.model.precond != "vp":
            raise ValueError(
                f"loss.name = {cfg.loss.name!r} trains an eps network, which samples through "
                f"the 'vp' preconditioning; set model.precond: vp (got {cfg.model.precond!r})"
            )
        return net, wrap(net), net_cfg
    denoiser = wrap(net)
    return denoiser, denoiser, net_cfg


def _loss(cfg: RunConfig, schedule) -> Callable:
    from gmdiff import losses
    from gmdiff.schedules import DiscreteVP, Schedule

    name, opts = cfg.loss.name, cfg.loss.options
    if name == "edm":
        allowed = {"p_mean", "p_std"}
        if set(opts) - allowed:
            raise ValueError(
                f"loss.options {sorted(set(opts) - allowed)} not allowed for the edm loss; "
                f"allowed: {sorted(allowed)} (sigma_data is model.sigma_data)"
            )
        return partial(losses.edm_loss, sigma_data=cfg.model.sigma_data, **opts)
    kinds = {
        "dsm": (losses.dsm_loss, Schedule, set()),
        "eps": (losses.eps_loss, DiscreteVP, set()),
        "smd": (losses.smd_loss, DiscreteVP, {"n_eta", "reduction", "temperature"}),
        "gm_ddpm": (losses.gm_ddpm_loss, DiscreteVP, {"classifier_weight"}),
    }
    fn, kind, allowed = _pick(kinds, name, "loss.name")
    if set(opts) - allowed:
        raise ValueError(
            f"loss.options {sorted(set(opts) - allowed)} not allowed for the {name} loss; "
            f"allowed: {sorted(allowed) or 'none'}"
        )
    if not isinstance(schedule, kind):
        raise ValueError(
            f"the {name} loss needs a {kind.__name__} schedule, got schedule.name = "
            f"{cfg.schedule.name!r}"
        )
    inspect.signature(fn).bind_partial(schedule=schedule, **opts)  # the allowed names exist
    return partial(fn, schedule=schedule, **opts)


def _sample_shape(net_cfg) -> tuple[int, ...]:
    net_cfg = getattr(net_cfg, "base", net_cfg)  # SMD / GM-DDPM nets: their base's shape
    if hasattr(net_cfg, "dim"):
        return (net_cfg.dim,)
    return (net_cfg.in_ch, net_cfg.resolution, net_cfg.resolution)


def _prior_std(schedule) -> float:
    """x_T ~ N(0, std^2 I): 1 for VP processes, sigma_max for EDM / VE."""
    from gmdiff.schedules import DiscreteVP, VPLinear

    if isinstance(schedule, DiscreteVP | VPLinear):
        return 1.0
    return float(schedule.sigma(schedule.t_max))


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


#: The sections that, with ``train``, identify a run: a checkpoint resumes only a run
#: that agrees with it on them (sample, evaluate and out_dir may change).
RUN_SECTIONS = ("data", "model", "loss", "schedule")


def train(cfg: RunConfig, resume: bool = True) -> list[dict]:
    """Train the configured model in out_dir (locked meanwhile; resumed when its
    checkpoint belongs to this config, refused when it belongs to another); writes
    out_dir/config.yaml once those checks pass. Returns the trainer's log records."""
    schedule = _schedule(cfg)
    trained, _, _ = _models(cfg, schedule)
    data, _ = _data(cfg)
    run = {name: asdict(getattr(cfg, name)) for name in RUN_SECTIONS}
    loss = _loss(cfg, schedule)
    trainer = Trainer(trained, loss, data, cfg.train, cfg.out_dir, _transform(cfg), run_config=run)
    with trainer.session(resume):
        if trainer.info.is_main:
            path = Path(cfg.out_dir) / "config.yaml"
            remove_orphans(path)
            atomic_write(path, yaml.safe_dump(_plain(asdict(cfg)), sort_keys=False))
        history = trainer.fit()
    return history if trainer.info.is_main else []


def _plain(obj: Any) -> Any:
    """Tuples -> lists, so the saved config is plain YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


@torch.no_grad()
def sample(cfg: RunConfig, checkpoint: str | Path | None = None) -> Tensor:
    """Draw ``sample.n`` samples from the EMA weights; saves them to out_dir/samples.pt."""
    from gmdiff.samplers import SAMPLERS

    schedule = _schedule(cfg)
    trained, denoiser, net_cfg = _models(cfg, schedule)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "checkpoint.pt"
    step = load_checkpoint(ckpt, trained, ema=True, map_location=str(device))
    _check_writable(Path(cfg.out_dir))
    denoiser.to(device).eval()
    s = cfg.sample
    fn = _pick(SAMPLERS, s.sampler, "sample.sampler")
    if s.n < 1 or s.batch < 1:
        raise ValueError(f"sample.n and sample.batch must be >= 1, got n={s.n}, batch={s.batch}")
    gen = torch.Generator(device).manual_seed(s.seed)
    std, shape, out = _prior_std(schedule), _sample_shape(net_cfg), []
    # an SMD network draws its latent noise eta from the sampler's generator: reproducible
    eta = trained.eta_from(gen) if hasattr(trained, "eta_from") else contextlib.nullcontext()
    with eta:
        for start in range(0, s.n, s.batch):
            b = min(s.batch, s.n - start)
            x_T = std * torch.randn((b, *shape), generator=gen, device=device)
            x0 = _call(
                fn, s.options, "sample.options", denoiser, schedule, x_T, s.steps, generator=gen
            )
            out.append(x0.cpu())
    x = torch.cat(out)
    atomic_save(
        {"samples": x, "step": step, "sampler": s.sampler, "steps": s.steps},
        Path(cfg.out_dir) / "samples.pt",
    )
    return x


def _reference(cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[Tensor, Any]:
    """n data examples to compare samples with (fresh draws for a toy, a random subset of
    the dataset otherwise, with the training centring) and the toy's analytic model."""
    data, model = _data(cfg)
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
