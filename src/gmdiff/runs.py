"""The experiment harness: build, train, cache and sample a run from its config.

Every trained model of the CLI and of the chapters is a :class:`~gmdiff.config.RunConfig`
taken through the same steps:

* :func:`build` turns the config into its pieces (:class:`Run`): the noise process, the
  module the trainer optimises, the denoiser D(x, sigma) built on it, the loss;
* :func:`train` trains it with :class:`gmdiff.train.Trainer` in ``cfg.out_dir``
  (checkpoints, exact resume, EMA, DDP, progress bar; the CLI's ``gmdiff train``);
* :func:`load_or_train` does the same in a folder of the model cache named by the config's
  hash, so a chapter trains a model once, resumes it after an interruption, and then loads
  it (in every profile: a ``full`` run of days on a GPU checkpoints like the CLI's);
  :func:`load_or_train_many` trains a chapter's bank of CPU models side by side, one
  process per core;
* :func:`draw_samples` is the one sampling loop: x_T from the schedule's prior, blocks of
  :data:`SAMPLE_BLOCK` samples, one generator; the network in batches that do not change
  the samples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from gmdiff import config as C
from gmdiff import threads
from gmdiff.config import RunConfig
from gmdiff.ema import EMA_INIT_BOUND, ema_init_share
from gmdiff.storage import atomic_write, load_checkpoint, lock_dir, remove_orphans
from gmdiff.train import CHECKPOINT, LOG, Trainer

CACHE_ENV = "GMDIFF_CACHE_DIR"
WORKERS_ENV = "GMDIFF_TRAIN_WORKERS"
BANK_ENV = "GMDIFF_BANK"


def call_with(fn: Callable, options: dict, where: str, *args: Any, **fixed: Any) -> Any:
    """fn(*args, **fixed, **options), turning a bad option into an error naming ``where``."""
    clash = sorted(set(options) & set(fixed))
    if clash:
        raise ValueError(f"{where}: {clash} are set by the command, not by the config")
    try:
        inspect.signature(fn).bind_partial(*args, **fixed, **options)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None
    return fn(*args, **fixed, **options)


def pick(registry: dict, name: str, where: str) -> Any:
    if name not in registry:
        raise ValueError(f"{where} = {name!r} is not known; choose one of {sorted(registry)}")
    return registry[name]


# --------------------------------------------------------------------------------------
# Building the pieces (nets, data and samplers are imported lazily)
# --------------------------------------------------------------------------------------


def schedule_of(cfg: RunConfig):
    """The noise process of ``cfg.schedule``."""
    from gmdiff.schedules import EDM, VE, DiscreteVP, VPLinear

    registry = {
        "edm": EDM,
        "ve": VE,
        "vp_linear": VPLinear,
        "ddpm_linear": DiscreteVP.linear,
        "ddpm_cosine": DiscreteVP.cosine,
    }
    fn = pick(registry, cfg.schedule.name, "schedule.name")
    return call_with(fn, cfg.schedule.options, "schedule.options")


def data_of(cfg: RunConfig) -> tuple[Any, Any]:
    """(training data: tensor, dataset or sampler; the analytic model of a toy or None)."""
    from gmdiff import data

    toys = {"ring2d": data.ring2d, "grid2d": data.grid2d, "low_rank_gmm": data.seeded_low_rank_gmm}
    images = {
        "digits8x8": lambda: data.digits8x8()[0],
        "mnist5k": lambda: data.mnist5k()[0],
        "mnist32": data.mnist32,
        "cifar10": lambda data_dir, train=True: data.load_cifar10(data_dir, train)[0],
        "celeba64": data.load_celeba64,
        "lsun": data.load_lsun,
    }
    name = cfg.data.name
    fn = pick(toys | images, name, "data.name")
    if "data_dir" in cfg.data.options and cfg.data.options["data_dir"] in (None, ""):
        raise ValueError(
            f"data.options.data_dir is empty; set it to the folder holding the {name} data "
            "(e.g. --set data.options.data_dir=/data/cifar10)"
        )
    try:
        loaded = call_with(fn, cfg.data.options, "data.options")
    except ValueError as err:  # a loader's own check names its argument, not the section
        if str(err).startswith("data.options"):
            raise
        raise ValueError(f"data.options: {err}") from err
    if name in toys:
        return (lambda n, g: loaded.sample(n, generator=g).float()), loaded
    return loaded, None


def transform_of(cfg: RunConfig) -> Callable[[Tensor, torch.Generator], Tensor] | None:
    from gmdiff.data import random_hflip

    if not cfg.data.hflip and cfg.data.centered:
        return None

    def transform(x: Tensor, g: torch.Generator) -> Tensor:
        x = random_hflip(x, g) if cfg.data.hflip else x
        return x if cfg.data.centered else (x + 1) / 2

    return transform


def models_of(cfg: RunConfig, schedule) -> tuple[nn.Module, nn.Module, Any]:
    """(the module the trainer optimises, the denoiser D(x, sigma) built on it, its net
    config). For the eps, smd and gm_ddpm losses the trained module is the raw eps network
    and the denoiser wraps it in VPPrecond; otherwise both are the preconditioned denoiser."""
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
    wrap = pick(wrappers, cfg.model.precond, "model.precond")
    if cfg.model.precond == "vp" and not isinstance(schedule, DiscreteVP | VPLinear):
        raise ValueError(
            "model.precond = 'vp' needs a VP schedule (schedule.name vp_linear, ddpm_linear "
            f"or ddpm_cosine), got schedule.name = {cfg.schedule.name!r}"
        )
    if getattr(net_cfg, "scale_by_sigma", False) and cfg.model.precond != "score":
        raise ValueError(
            f"model.net = {cfg.model.net!r} divides its output by exp(c_noise) "
            "(scale_by_sigma), which is sigma only under model.precond: score "
            f"(c_noise = log sigma); under {cfg.model.precond!r} set "
            "model.overrides.scale_by_sigma: false (the preconditioning scales the output)"
        )
    if cfg.loss.name == "gm_ddpm" and not isinstance(net_cfg, nets.GMDDPMConfig):
        raise ValueError(
            f"loss.name = 'gm_ddpm' trains a GM-DDPM network (eps net + component classifier); "
            f"model.net = {cfg.model.net!r} is not one (choose a gm_ddpm_* config)"
        )
    if cfg.loss.name == "gm_ddpm":  # the per-pixel reading has no classifier: refuse now
        from gmdiff.losses import check_gm_ddpm_classifier, gm_ddpm_loss

        default = inspect.signature(gm_ddpm_loss).parameters["classifier_weight"].default
        check_gm_ddpm_classifier(net_cfg.noise, cfg.loss.options.get("classifier_weight", default))
    if cfg.loss.name in ("eps", "smd", "gm_ddpm"):
        if cfg.model.precond != "vp":
            raise ValueError(
                f"loss.name = {cfg.loss.name!r} trains an eps network, which samples through "
                f"the 'vp' preconditioning; set model.precond: vp (got {cfg.model.precond!r})"
            )
        return net, wrap(net), net_cfg
    denoiser = wrap(net)
    return denoiser, denoiser, net_cfg


def loss_of(cfg: RunConfig, schedule) -> Callable:
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
        "dsm": (losses.dsm_loss, Schedule, {"noise"}),
        "eps": (losses.eps_loss, DiscreteVP, {"noise"}),
        "smd": (losses.smd_loss, DiscreteVP, {"n_eta", "reduction", "temperature"}),
        "gm_ddpm": (losses.gm_ddpm_loss, DiscreteVP, {"classifier_weight"}),
    }
    fn, kind, allowed = pick(kinds, name, "loss.name")
    if set(opts) - allowed:
        raise ValueError(
            f"loss.options {sorted(set(opts) - allowed)} not allowed for the {name} loss; "
            f"allowed: {sorted(allowed) or 'none'}"
        )
    if not isinstance(schedule, kind):
        raise ValueError(  # noqa: TRY004 -- a bad config value is a ValueError here
            f"the {name} loss needs a {kind.__name__} schedule, got schedule.name = "
            f"{cfg.schedule.name!r}"
        )
    opts = with_noise_models(opts, "loss.options.noise")
    inspect.signature(fn).bind_partial(schedule=schedule, **opts)  # the allowed names exist
    return partial(fn, schedule=schedule, **opts)


def with_noise_models(options: dict, where: str) -> dict:
    """``options`` with a ``noise`` mapping ``{name: ..., **arguments}`` replaced by the
    noise model it names (:func:`gmdiff.noise.from_config`), as a loss or sampler takes it."""
    from gmdiff import noise

    if not isinstance(options.get("noise"), dict):
        return options
    try:
        return options | {"noise": noise.from_config(options["noise"])}
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def sample_shape(net_cfg) -> tuple[int, ...]:
    net_cfg = getattr(net_cfg, "base", net_cfg)  # SMD / GM-DDPM nets: their base's shape
    if hasattr(net_cfg, "dim"):
        return (net_cfg.dim,)
    return (net_cfg.in_ch, net_cfg.resolution, net_cfg.resolution)


# --------------------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------------------


@dataclass
class Run:
    """The pieces of a run config: ``trained`` is what the trainer optimises (after
    :func:`load_or_train`: the EMA weights, in eval mode), ``denoiser`` the D(x, sigma)
    built on it (the same module, or a VPPrecond around an eps network)."""

    cfg: RunConfig
    schedule: Any
    trained: nn.Module
    denoiser: nn.Module
    net_config: Any
    loss: Callable

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return sample_shape(self.net_config)

    def adequacy(self) -> dict[str, float]:
        """How well trained the run is (after :func:`load_or_train`): ``ema_init_share``,
        the weight of the random initialisation left in the EMA
        (:func:`gmdiff.ema.ema_init_share`), and from the training log (one mean loss per
        ``train.log_every`` window) the ``final_loss`` of the last window, ``final/best``
        (1: the loss has not risen from its best window) and ``last-half drop``, the
        relative fall of the loss from the window at half the steps to the last (near 0:
        a plateau; a log of one window gives no trend)."""
        out = {"steps": self.cfg.train.steps, "ema_init_share": ema_init_share(self.cfg.train)}
        log = Path(self.cfg.out_dir or ".") / LOG
        records = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        )
        if records:
            final = records[-1]["loss"]
            half = min(records, key=lambda r: abs(r["step"] - self.cfg.train.steps / 2))
            out |= {"final_loss": final, "final/best": final / min(r["loss"] for r in records)}
            if len(records) > 1:
                out["last-half drop"] = 1.0 - final / half["loss"]
        return out

    def sample(self, n: int, seed: int = 0, **overrides: Any) -> Tensor:
        """n samples as the config's ``sample`` section says (sampler, steps, options;
        ``batch``, the rows of one network call, does not change them), any of them
        overridden by keyword (``sampler`` a name in ``gmdiff.samplers.SAMPLERS``; other
        keywords are sampler options) -- :func:`draw_samples`."""
        from gmdiff.samplers import SAMPLERS

        s = self.cfg.sample
        name = overrides.pop("sampler", s.sampler)
        steps, batch = overrides.pop("steps", s.steps), overrides.pop("batch", s.batch)
        options = (s.options if name == s.sampler else {}) | overrides
        fn = pick(SAMPLERS, name, "sample.sampler")
        return draw_samples(
            self.denoiser,
            self.schedule,
            fn,
            steps,
            self.shape,
            n,
            seed=seed,
            batch=batch,
            **options,
        )


def adequacy_table(
    rows: Sequence[dict], index: Sequence[str], worst_over: str | None = None
) -> Any:
    """A chapter's table of :meth:`Run.adequacy` figures (one dict per model, with the
    ``index`` keys that name it), columns named for readers and rounded. With
    ``worst_over`` (an index key, e.g. ``"seed"``) a bank is shown by its worst member of
    each group: the largest EMA share, final/best and last-half drop over that key (the
    final loss, which differs by member, is left out)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if worst_over is not None:
        index = [k for k in index if k != worst_over]
        frame = (
            frame.drop(columns=[worst_over, "final_loss"])
            .groupby(index, sort=False)
            .max()
            .reset_index()
        )
    names = {"ema_init_share": "EMA share of init", "final_loss": "final loss"}
    frame = frame.set_index(list(index)).rename(columns=names)
    digits = {"EMA share of init": 3, "final/best": 2, "last-half drop": 2}
    loss = frame["final loss"].abs().max() if "final loss" in frame else 1.0
    frame = frame.round(digits | {"final loss": 1 if loss >= 10 else 3})
    floats = frame.select_dtypes("float").columns
    frame[floats] = frame[floats] + 0.0  # a rounded -0.001 prints "0.00", not "-0.00"
    if worst_over is not None:
        frame.columns = [
            c if c == "steps" else f"{c} (max over {worst_over}s)" for c in frame.columns
        ]
    return frame


def build(cfg: RunConfig) -> Run:
    """The pieces of ``cfg``, the network freshly initialised from ``cfg.train.seed``."""
    schedule = schedule_of(cfg)
    trained, denoiser, net_cfg = models_of(cfg, schedule)
    return Run(cfg, schedule, trained, denoiser, net_cfg, loss_of(cfg, schedule))


def _trainer(run: Run, out_dir: str | Path) -> Trainer:
    data, _ = data_of(run.cfg)
    return Trainer(
        run.trained,
        run.loss,
        data,
        run.cfg.train,
        out_dir,
        transform_of(run.cfg),
        run_config={name: C.plain(getattr(run.cfg, name)) for name in C.RUN_SECTIONS},
    )


def train(cfg: RunConfig, resume: bool = True, progress_lines: bool = False) -> list[dict]:
    """Train ``cfg`` in ``cfg.out_dir`` (locked meanwhile; resumed when its checkpoint
    belongs to this config, refused when it belongs to another) on the intra-op threads
    :func:`train_threads` chooses; writes out_dir/config.yaml once those checks pass.
    Returns the trainer's log records. ``progress_lines``: without a terminal, a progress
    line on stderr per ``log_every`` steps and at least one a minute
    (:attr:`gmdiff.train.Trainer.progress_lines`)."""
    run = build(cfg)
    with threads.using(train_threads(run)):
        return _train(run, resume, progress_lines)


def train_threads(run: Run) -> int:
    """The intra-op threads of training ``run`` (:func:`gmdiff.threads.choose`): its
    ``train.threads``; for "auto", by the forward FLOPs of the network at the local batch
    (``train.batch_size`` over the DDP ranks)."""
    cfg = run.cfg
    world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    d = cfg.train.device  # not parsed here: the Trainer names a bad device in one sentence
    cuda = torch.cuda.is_available() if d == "auto" else d.startswith("cuda")
    flops = 0.0
    if cfg.train.threads == "auto" and not cuda:
        batch = max(1, cfg.train.batch_size // world)
        flops = threads.forward_flops(run.denoiser, run.shape, batch)
    return threads.choose(cfg.train.threads, flops, cuda)


#: EMA samples in TensorBoard's grid (``train.log: tensorboard``, image data): 4 x 4.
PREVIEW_N = 16


def preview_of(cfg: RunConfig, n: int = PREVIEW_N) -> Callable[[nn.Module], Tensor] | None:
    """For image data, ``preview(ema)``: ``n`` samples of the EMA network ``ema`` (the
    trainer's, of ``cfg``'s architecture) as ``cfg.sample`` says (sampler, steps, batch,
    options) from seed ``sample.seed``, the same noise at every call so that successive
    grids show the training's progress; drawn by a second copy of the run, so the
    trainer's modules and random state are untouched (:attr:`gmdiff.train.Trainer.preview`).
    None for other data (the 2-D toys)."""
    with torch.random.fork_rng(devices=[]):  # building initialises a network
        run = build(cfg)
    if len(run.shape) != 3:
        return None
    run.denoiser.eval().requires_grad_(False)

    def preview(ema: nn.Module) -> Tensor:
        dev = device_of(ema)
        run.denoiser.to(dev)
        run.trained.load_state_dict(ema.state_dict())
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            return run.sample(n, seed=cfg.sample.seed)

    return preview


def _train(run: Run, resume: bool, progress_lines: bool) -> list[dict]:
    cfg = run.cfg
    trainer = _trainer(run, cfg.out_dir)
    trainer.progress_lines = progress_lines
    if cfg.train.log == "tensorboard" and trainer.info.is_main:
        trainer.preview = preview_of(cfg)
    with trainer.session(resume):
        if trainer.info.is_main:
            path = Path(cfg.out_dir) / "config.yaml"
            remove_orphans(path)
            atomic_write(path, yaml.safe_dump(C.plain(cfg), sort_keys=False))
        history = trainer.fit()
    return history if trainer.info.is_main else []


def check_ema(cfg: RunConfig) -> None:
    """Refuse, before any training, a run whose EMA would still hold more than
    :data:`gmdiff.ema.EMA_INIT_BOUND` of its random initialisation at ``train.steps``:
    such an EMA is not the trained network, and the book's results use the EMA."""
    share = ema_init_share(cfg.train)
    if share > EMA_INIT_BOUND:
        t = cfg.train
        raise ValueError(
            f"the EMA of this run would still hold {share:.1%} of its random initialisation "
            f"after train.steps = {t.steps} at train.ema_decay = {t.ema_decay} (the bound is "
            f"{EMA_INIT_BOUND:.0%}); set train.ema_rampup (EDM's ramp, e.g. 0.05), lower "
            "train.ema_decay or train longer"
        )


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$GMDIFF_CACHE_DIR``, else ``results/cache`` under the
    repository root (the folder holding ``pyproject.toml`` above this file), else under
    the current directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    repo = Path(__file__).resolve().parents[2]
    base = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return base / "results" / "cache"


def run_dir(cfg: RunConfig, name: str = "run", cache_dir: str | Path | None = None) -> Path:
    """The cache folder of ``cfg``: ``<cache root>/runs/<name>-<hash of the config>``."""
    return cache_root(cache_dir) / "runs" / f"{name}-{C.sha(cfg)}"


#: The lock file of a cache folder, held (waiting for it) while a process checks what is
#: trained there and trains or loads it: two chapters run side by side (``pytest -n 2``)
#: that need the same model train it once, the second waiting for the first. The
#: Trainer's own lock (:data:`gmdiff.storage.LOCK`) still refuses a second writer at once.
CACHE_LOCK = ".cache.lock"


@contextlib.contextmanager
def claimed(folders: Iterable[Path]) -> Iterator[None]:
    """Hold the cache lock (:data:`CACHE_LOCK`) of each of ``folders`` for the block,
    waiting while another process holds one; taken in sorted order, so that processes
    that claim overlapping sets cannot wait on each other in a cycle."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(set(folders)):
            stack.enter_context(
                lock_dir(folder, CACHE_LOCK, "another process using this cached model", wait=True)
            )
        yield


def load_or_train(
    cfg: RunConfig,
    name: str = "run",
    *,
    cache_dir: str | Path | None = None,
    snapshot_steps: Iterable[int] = (),
) -> tuple[Run, dict[int, nn.Module]]:
    """The run of ``cfg`` with its trained EMA weights, and the EMA denoisers at
    ``snapshot_steps``. Trained in :func:`run_dir` (checkpointing every
    ``train.ckpt_every`` steps, resumed after an interruption) unless already there;
    training stops at each snapshot step and continues, which gives the same weights as
    one uninterrupted run."""
    check_ema(cfg)
    folder = run_dir(cfg, name, cache_dir)
    stops = sorted({int(s) for s in snapshot_steps})
    if any(not 0 <= s <= cfg.train.steps for s in stops):
        raise ValueError(f"snapshot_steps must lie in [0, {cfg.train.steps}], got {stops}")
    with claimed([folder]):
        run = build(dataclasses.replace(cfg, out_dir=str(folder)))
        snapshots = _train_to(run, folder, stops)
    return run, snapshots


def _train_to(run: Run, folder: Path, stops: list[int]) -> dict[int, nn.Module]:
    """:func:`load_or_train`'s work in ``folder`` (claimed): train to each snapshot step
    and to the end, load the EMA weights into ``run``, return the snapshot denoisers."""
    cfg = run.cfg
    snapshots: dict[int, nn.Module] = {}
    for stop in [*stops, cfg.train.steps]:
        snap = folder / f"snapshot-{stop}.pt"
        if stop in stops and snap.is_file():
            continue
        if stop == 0:  # the EMA before any step is the seeded initialisation
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(snap, lambda f: torch.save(build(cfg).trained.state_dict(), f))
            continue
        if stop in stops and _finished_at(folder) > stop:  # a snapshot asked for later:
            (folder / CHECKPOINT).unlink()  # retrain from step 0 (training is deterministic)
        if _finished_at(folder) < stop:
            part = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=stop))
            _fit(_trainer(build(part), folder))
        if stop in stops:
            load_checkpoint(folder / CHECKPOINT, run.trained, ema=True)
            atomic_write(snap, lambda f: torch.save(run.trained.state_dict(), f))
    load_checkpoint(folder / CHECKPOINT, run.trained, ema=True)
    for stop in stops:
        snapshots[stop] = _frozen(build(cfg), folder / f"snapshot-{stop}.pt").denoiser
    run.trained.eval().requires_grad_(False)
    return snapshots


def load_or_train_from(
    start: Run, cfg: RunConfig, name: str = "run", *, cache_dir: str | Path | None = None
) -> Run:
    """The run of ``cfg`` trained from ``start``'s trained (EMA) weights instead of a
    fresh initialisation: a continuation control (does an objective keep or undo what
    another objective trained?). Cached as :func:`load_or_train` is, in a folder named for
    both configs; ``cfg`` must build the same network as ``start``."""
    check_ema(cfg)
    folder = run_dir(cfg, f"{name}-from-{C.sha(start.cfg)}", cache_dir)
    run = build(dataclasses.replace(cfg, out_dir=str(folder)))
    with claimed([folder]):
        if _finished_at(folder) < cfg.train.steps:
            if _finished_at(folder) < 0:  # a resumed run keeps its checkpoint's weights
                run.trained.load_state_dict(start.trained.state_dict())
            _fit(_trainer(run, folder))
        load_checkpoint(folder / CHECKPOINT, run.trained, ema=True)
    run.trained.eval().requires_grad_(False)
    return run


def load_or_train_many(
    jobs: Sequence[tuple[RunConfig, str]],
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
) -> list[Run]:
    """:func:`load_or_train` of each ``(cfg, name)`` in ``jobs``, in order; the runs not
    yet in the cache are first trained side by side in ``workers`` processes.

    Every job still to train is checked first (:func:`check_job`): a bank with one bad
    config is refused, naming it, before anything trains. The harness then chooses each run's path
    (:func:`training_units`): runs with no checkpoint yet that share a name and a config
    but for ``train.seed`` and that :mod:`gmdiff.ensemble` can batch (a replayable loss, on
    the CPU) train as one batched ensemble, each member still into its own cache folder
    (checkpoint, log, exact resume on the solo path); every other run trains alone. Each
    unit trains on one thread (:func:`_fit`) from its members' own seeds, so a run alone
    has the weights of a serial run bit for bit (tested) and a batched member those of its
    solo run up to float round-off (tests/test_ensemble.py). ``$GMDIFF_BANK=serial``
    trains every run alone. ``workers`` defaults to ``$GMDIFF_TRAIN_WORKERS``, else the
    cores this process may use; runs on a GPU (which they would share) train one at a
    time."""
    jobs = list(jobs)
    todo = {}  # one job per cache folder: a config listed twice trains once
    for i, (cfg, name) in enumerate(jobs):
        check_ema(cfg)
        folder = run_dir(cfg, name, cache_dir)
        if folder not in todo and _finished_at(folder) < cfg.train.steps:
            check_job(cfg, f"job {i} ({name}) of the bank")
            todo[folder] = (cfg, name)
    n_workers = train_workers(workers)
    units = training_units(list(todo.values()), cache_dir, n_workers)
    n = min(len(units), n_workers)
    if n > 1 and all(_on_cpu(cfg) for cfg, _ in todo.values()):
        with ThreadPoolExecutor(n) as pool:  # each thread waits on one worker process
            root = cache_root(cache_dir)
            futures = [pool.submit(_train_in_process, unit, root) for unit in units]
            for f in futures:
                f.result()  # re-raises a worker's error here
    else:
        from gmdiff.ensemble import train_bank

        for unit in units:
            if len(unit) > 1:
                train_bank([cfg for cfg, _ in unit], unit[0][1], cache_dir=cache_dir)
    return [load_or_train(cfg, name, cache_dir=cache_dir)[0] for cfg, name in jobs]


def check_job(cfg: RunConfig, where: str) -> None:
    """Refuse, before any training, a config that cannot train: its EMA bound
    (:func:`check_ema`) and every piece :func:`build` makes (network, loss, schedule,
    preconditioning), the error prefixed by ``where``."""
    try:
        check_ema(cfg)
        with torch.random.fork_rng(devices=[]):  # building initialises a network
            build(cfg)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def bank_mode() -> str:
    """``$GMDIFF_BANK``: "batched" (the default: eligible banks train as one ensemble) or
    "serial" (every run alone, as before the ensemble)."""
    mode = os.environ.get(BANK_ENV, "").strip() or "batched"
    if mode not in ("batched", "serial"):
        raise ValueError(f"${BANK_ENV} must be 'batched' or 'serial', got {mode!r}")
    return mode


def training_units(
    todo: Sequence[tuple[RunConfig, str]], cache_dir: str | Path | None, workers: int
) -> list[list[tuple[RunConfig, str]]]:
    """The runs of ``todo`` grouped into what trains together: a group of runs with no
    checkpoint yet, the same name and the same config but for ``train.seed``, that
    :func:`gmdiff.ensemble.bank_problem` accepts, is one unit (a batched bank); every
    other run (part-trained: it resumes alone; or alone in its group; or refused by the
    ensemble) is a unit of one. Banks are halved while there are fewer units than
    ``workers``, so that no core idles; the units come longest first (members x steps),
    so that the workers finish together. Every unit is a single run under
    ``$GMDIFF_BANK=serial``."""
    if bank_mode() == "serial":
        return [[job] for job in todo]
    from gmdiff.ensemble import bank_problem

    groups: dict[str, list[tuple[RunConfig, str]]] = {}
    units: list[list[tuple[RunConfig, str]]] = []
    for cfg, name in todo:
        if _finished_at(run_dir(cfg, name, cache_dir)) >= 0:
            units.append([(cfg, name)])
            continue
        seedless = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=0))
        groups.setdefault(f"{name}-{C.sha(seedless)}", []).append((cfg, name))
    for group in groups.values():
        if len(group) > 1 and bank_problem([cfg for cfg, _ in group]) is None:
            units.append(group)
        else:
            units += [[job] for job in group]
    while len(units) < workers and max(map(len, units), default=0) > 1:
        big = max(units, key=len)
        units.remove(big)
        units += [big[: len(big) // 2], big[len(big) // 2 :]]
    return sorted(units, key=lambda u: -len(u) * u[0][0].train.steps)  # the longest first


def train_workers(workers: int | None = None) -> int:
    """How many runs :func:`load_or_train_many` trains at once: ``workers``, else
    ``$GMDIFF_TRAIN_WORKERS``, else the number of cores this process may use."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env and not env.isdigit():
            raise ValueError(f"${WORKERS_ENV} must be a whole number >= 1, got {env!r}")
        workers = int(env) if env else len(os.sched_getaffinity(0))
    if workers < 1:
        raise ValueError(f"workers must be >= 1 (or ${WORKERS_ENV}), got {workers}")
    return workers


def _on_cpu(cfg: RunConfig) -> bool:
    d = cfg.train.device
    return not torch.cuda.is_available() if d == "auto" else torch.device(d).type == "cpu"


def _train_in_process(unit: Sequence[tuple[RunConfig, str]], cache: Path) -> None:
    """Train a unit of :func:`training_units` (one run, or a bank of runs of one name)
    into the cache in a fresh ``python -m gmdiff.train_worker`` process (a new
    interpreter: nothing of the caller's script or kernel is re-run there)."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    name = unit[0][1]
    label = ", ".join(f"{n}-{C.sha(cfg)}" for cfg, n in unit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump([C.plain(cfg) for cfg, _ in unit], sort_keys=False))
        cmd = [sys.executable, "-m", "gmdiff.train_worker", str(path), name, str(cache)]
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"training {label} in a worker process failed "
            f"(exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    for cfg, n in unit:
        if _finished_at(run_dir(cfg, n, cache)) < cfg.train.steps:  # a config lost in transit
            raise RuntimeError(f"the worker process did not train {run_dir(cfg, n, cache)}")


def _finished_at(folder: Path) -> int:
    path = folder / CHECKPOINT
    if not path.is_file():
        return -1
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def _fit(trainer: Trainer) -> None:
    """Fit with one torch thread on CPU when ``train.threads`` is "auto" (else with that
    many): on a shared machine small nets run faster so, and the floating-point reduction
    order does not depend on the machine's core count."""
    setting = trainer.config.threads
    n = torch.get_num_threads() if trainer.device.type != "cpu" else 1
    with (
        threads.using(n if setting == "auto" else setting),
        torch.random.fork_rng(devices=[]),  # the caller's random state is left as it was
    ):
        trainer.fit(resume=True)


def raw_weights(run: Run) -> Run:
    """The run of :func:`load_or_train` with the raw weights of its checkpoint instead of
    the EMA (the control a referee asks for: does a result depend on the averaging?)."""
    raw = build(run.cfg)
    load_checkpoint(Path(run.cfg.out_dir) / CHECKPOINT, raw.trained, ema=False)
    raw.trained.eval().requires_grad_(False)
    return raw


def _frozen(run: Run, weights: Path) -> Run:
    run.trained.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    run.trained.eval().requires_grad_(False)
    return run


#: Samples per sampler call in :func:`draw_samples`. The x_T of a block and every random
#: draw the sampler makes for it come from the one generator, block after block, so the
#: samples depend on the seed, the sampler and its settings, never on ``batch`` (the rows
#: of one network call). 1024 is the default batch of the time when batches were also the
#: sampler's calls: samples drawn at that batch kept their values.
SAMPLE_BLOCK = 1024


class _Chunked:
    """``denoiser(x, sigma)`` evaluated on at most ``rows`` rows of ``x`` at a time (the
    per-row arguments cut alike, the outputs concatenated): the network's memory bound,
    while the sampler steps the whole block. An SMD network's eta is drawn for the whole
    block first, as one call would draw it. Other attributes are the denoiser's (a
    GM-DDPM sampler reads its ``net``)."""

    def __init__(self, denoiser: Callable, rows: int, smd: Any) -> None:
        self.inner, self.rows, self.smd = denoiser, rows, smd

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)

    def __call__(self, x: Tensor, sigma: Any, *args: Any, **kwargs: Any) -> Tensor:
        n = x.shape[0]
        if n <= self.rows:
            return self.inner(x, sigma, *args, **kwargs)

        def cut(v: Any, part: slice) -> Any:
            per_row = isinstance(v, Tensor) and v.ndim >= 1 and v.shape[0] == n
            return v[part] if per_row else v

        eta = None if self.smd is None else self.smd.sample_eta(x)
        out = []
        for start in range(0, n, self.rows):
            part = slice(start, start + self.rows)
            a = [cut(v, part) for v in args]
            kw = {k: cut(v, part) for k, v in kwargs.items()}
            with contextlib.nullcontext() if eta is None else self.smd.eta_from(eta[part]):
                out.append(self.inner(x[part], cut(sigma, part), *a, **kw))
        return torch.cat(out)


@torch.no_grad()
def draw_samples(
    denoiser: Callable,
    schedule: Any,
    sampler: Callable[..., Tensor],
    steps: int,
    shape: tuple[int, ...],
    n: int,
    *,
    seed: int = 0,
    batch: int = 1024,
    block: int = SAMPLE_BLOCK,
    device: torch.device | str | None = None,
    **options: Any,
) -> Tensor:
    """n samples (on the CPU) of ``sampler`` with ``steps`` steps from the schedule's prior
    x_T ~ N(0, prior_std^2 I), all randomness from one generator seeded by ``seed`` (an SMD
    network's latent noise too). The sampler runs on ``block`` samples at a time
    (:data:`SAMPLE_BLOCK`; a plain tqdm bar over the blocks on a terminal), the network on
    at most ``batch`` rows at a time: the samples depend on ``block``, never on ``batch``
    (up to the network's round-off, which can depend on the rows of a call)."""
    if n < 1 or batch < 1 or block < 1:
        raise ValueError(
            f"the sample count, batch and block must be >= 1, got n={n}, batch={batch}, "
            f"block={block}"
        )
    from gmdiff.samplers.base import progress

    dev = torch.device(device) if device is not None else device_of(denoiser)
    gen = torch.Generator(dev).manual_seed(seed)
    options = with_noise_models(options, "sample.options.noise")
    smd = _find(denoiser, "eta_from")
    net = denoiser if batch >= min(block, n) else _Chunked(denoiser, batch, smd)
    where = f"sample.options of sampler {getattr(sampler, '__name__', sampler)}"
    out = []
    with smd.eta_from(gen) if smd is not None else contextlib.nullcontext():
        for start in progress(range(0, n, block), "blocks"):
            b = min(block, n - start)
            x_T = schedule.prior_sample((b, *shape), gen, dev)
            x0 = call_with(sampler, options, where, net, schedule, x_T, steps, generator=gen)
            out.append(x0.cpu())
    return torch.cat(out)


def _find(module: Any, attr: str) -> Any:
    """The first submodule of ``module`` (itself included) that has ``attr``, or None."""
    if not isinstance(module, nn.Module):
        return None
    return next((m for m in module.modules() if hasattr(m, attr)), None)


def device_of(model: Any) -> torch.device:
    """The device of a module's parameters (CPU for a function or a parameterless module)."""
    p = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return p.device if p is not None else torch.device("cpu")
