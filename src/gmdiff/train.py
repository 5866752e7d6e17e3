"""One training loop for every model in the library: seeds, EMA, warm-up, gradient
clipping, bf16 autocast, optional torch.compile, DDP under ``torchrun``, atomic
checkpoints and exact resume. Its parts live beside it: the batches
(:mod:`gmdiff.batches`), the EMA (:mod:`gmdiff.ema`), the device, process group and seeds
(:mod:`gmdiff.distributed`), and the per-example draws of the global batch
(:mod:`gmdiff.global_batch`).

Randomness. Every random draw of step k comes from generators seeded by a hash of
(seed, k, stream), the same on every rank: the sampler's fresh examples and the
augmentation ("data"), the loss's noise ("noise") and torch's global generator (dropout;
"global"); the batch indices come from a permutation per epoch. A step's randomness is
therefore a function of its index alone, so a run resumed from a checkpoint at step k draws
exactly what the uninterrupted run drew, with no generator state to save; the checkpoint
holds the model, its EMA, the optimizer and the step. On CPU an interrupted-then-resumed
run reaches bit-identical weights (tested); on CUDA, non-deterministic kernels may still
differ.

Distributed. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the trainer joins
the process group (NCCL on CUDA, gloo on CPU), places the model on ``cuda:LOCAL_RANK``,
wraps it in DistributedDataParallel and gives each rank its own slice of the global batch
(``batch_size`` is the global batch, which must be a multiple of the number of processes).
Only rank 0 writes checkpoints, logs (its own rows' loss) and shows the progress bar.
Launch with ``torchrun --nproc_per_node N -m gmdiff.cli train --config ...``.

The number of processes changes nothing but round-off. Rank r of N trains on rows
[r b, (r + 1) b) of the global batch of G = N b rows (the same example indices as one
process), and every per-example draw (noise level, noise, mixture component, SMD latent,
flip, dropout mask, a sampler's fresh examples) is the one a single process draws for that
row of the global batch: each rank seeds its generators as rank 0 does and keeps its rows
of the global draw (:mod:`gmdiff.global_batch`, which the losses, noise models, nets and
augmentations use). DDP's mean of the ranks' gradients is then the one-process batch
gradient up to the order of float additions (tested with 2 gloo ranks: 1e-7 relative after
8 steps). A single process draws exactly what it drew before this rule (same seeds, same
calls), so its runs and cached models are unchanged. Exceptions, named when they occur:
``torch.nn.Dropout`` layers of a model from outside the library draw per rank (the trainer
warns; use :class:`gmdiff.global_batch.Dropout`), and Gamma noise is refused under DDP.
Adam turns round-off in a gradient that is zero in exact arithmetic (a bias before a
normalisation, an attention's key bias) into steps of size lr, so such parameters may
differ by more than round-off between world sizes, as they do between thread counts (the
network's output does not see them). The loss gets the wrapped network
(its attributes through :func:`gmdiff.nets.unwrap`), and DDP runs without
``find_unused_parameters``: every parameter that requires a gradient takes one each step
(a network freezes one it holds but never reads, as the SongUNet its augmentation map).

The out_dir. :meth:`Trainer.session` holds it for one run: an flock on ``.lock`` (a
second run into it fails at once, naming the holder's PID; the kernel drops the lock when
the holder dies, even by SIGKILL), removal of the temp files a killed save left, and a
resume that refuses a checkpoint another run wrote (the checkpoint stores the run's
config) or one past ``steps``, then cuts ``train_log.jsonl`` back to the checkpoint's step.

Switches ``bf16`` (autocast to bfloat16), ``compile`` (torch.compile), ``tf32`` (TF32
matmuls and convolutions), ``channels_last`` (NHWC weights and batches) and
``cudnn_benchmark`` (cuDNN's per-shape algorithm search) act on CUDA only and are no-ops on
CPU, where they would slow the small models this project trains; ``tf32`` and
``cudnn_benchmark`` set torch's process-wide flags. The optimizer is the fused AdamW on
CUDA and the EMA one foreach lerp over all parameters (one kernel launch per chunk, not one
per tensor).

Input pipeline. ``num_workers`` > 0 with a map-style dataset (an image folder) loads the
batches in a DataLoader with that many worker processes, which decode the images, with
``prefetch_factor`` batches in flight per worker and pinned memory on CUDA. The batch
sampler yields the same index lists as the in-process path, so the batches are identical;
one loader iterator serves the whole run, so its workers persist across epochs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto warns in kernels without ipywidgets

from gmdiff.batches import Batches, Sampler
from gmdiff.distributed import device_of_config, init_distributed, step_seed
from gmdiff.ema import ema_decay_at, ema_init_share, ema_update
from gmdiff.global_batch import Dropout
from gmdiff.images import to_uint8, viewable_grid
from gmdiff.noise import batch_index
from gmdiff.storage import (
    atomic_save,
    atomic_write,
    differences,
    errors_naming,
    flatten,
    load_state,
    lock_dir,
    read_checkpoint,
    remove_orphans,
)
from gmdiff.threads import check as check_threads

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"
BOARD = "tensorboard"
#: What ``TrainConfig.log`` may be: the JSON-lines log alone, or TensorBoard's too.
LOGS = ("jsonl", "tensorboard")

#: TrainConfig fields a resumed run may change: they change how it runs, not what it
#: trains (``steps`` only upwards). Every other field, and the caller's run_config, must
#: match the checkpoint's.
RESUMABLE = (
    "steps", "log_every", "ckpt_every", "log", "bf16", "compile", "device",
    "tf32", "channels_last", "cudnn_benchmark", "num_workers", "prefetch_factor", "threads",
)  # fmt: skip

#: TrainConfig fields added after runs were cached: a run config's hash and a checkpoint's
#: identity leave each of them out while it has its default (gmdiff.config.identity,
#: Trainer.identity), so older caches and checkpoints stay valid. (The loader fields never
#: enter it; ``threads`` changes a CPU run's round-off, as the CUDA switches a GPU run's.)
LATE_FIELDS = ("tf32", "channels_last", "cudnn_benchmark", "ema_rampup", "threads")


LossFn = Callable[..., Tensor | dict[str, Tensor]]
"""``loss_fn(model, x0, generator=gen)`` -> scalar loss, or a dict with key ``"loss"``."""

Transform = Callable[[Tensor, torch.Generator], Tensor]
"""``transform(batch, generator)`` -> augmented batch (e.g. data.random_hflip)."""


@dataclass
class TrainConfig:
    """Optimisation settings. ``batch_size`` is the global batch over all DDP ranks.

    ``lr`` ramps linearly from lr/warmup_steps to lr over ``warmup_steps`` steps (the
    warm-up of Ho et al. 2020's and score_sde's released code, 5000 steps on CIFAR-10);
    ``grad_clip`` is the max global gradient norm (0 disables it);
    ``ema_decay`` the EMA decay per step; ``ema_rampup`` > 0 caps the EMA's half-life at
    that fraction of the steps taken so far (EDM's ``ema_rampup_ratio``, Karras et al. 2022,
    0.05 there), so the EMA starts from the trained weights instead of the random
    initialisation (:func:`gmdiff.ema.ema_decay_at`); ``ckpt_every`` = 0 writes a checkpoint only at
    the end; ``device`` "auto" picks cuda:LOCAL_RANK when CUDA is available, else cpu.
    ``bf16``, ``compile``, ``tf32``, ``channels_last``, ``cudnn_benchmark``: CUDA only (see
    the module docstring); ``num_workers`` / ``prefetch_factor``: the loader of a map-style
    dataset (0 workers: batches are read in the training process). ``log``: "jsonl"
    (train_log.jsonl alone, no dependency) or "tensorboard" (also the same records as
    TensorBoard scalars train/loss, train/lr, train/grad_norm (before clipping) and
    train/ema_init_share in out_dir/tensorboard/, and for image data a grid of EMA samples,
    samples/ema, at every checkpoint (:attr:`Trainer.preview`); needs the
    ``tensorboard`` package). ``threads``: torch's intra-op threads on the CPU, "auto" or
    a whole number >= 1 (:mod:`gmdiff.threads`; the Trainer itself does not set them,
    :func:`gmdiff.runs.train` does).
    """

    steps: int
    batch_size: int
    lr: float = 2e-4
    warmup_steps: int = 0
    ema_decay: float = 0.9999
    ema_rampup: float = 0.0
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 0
    bf16: bool = False
    compile: bool = False
    device: str = "auto"
    tf32: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    num_workers: int = 0
    prefetch_factor: int = 2
    log: str = "jsonl"
    threads: int | str = "auto"

    def __post_init__(self) -> None:
        betas = self.adam_betas
        if (
            not isinstance(betas, list | tuple)
            or len(betas) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in betas)
            or not all(0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(
                f"train.adam_betas = {betas!r} must be two numbers in [0, 1), e.g. [0.9, 0.999]"
            )
        self.adam_betas = tuple(betas)
        self.threads = check_threads(self.threads)
        if self.log not in LOGS:
            raise ValueError(f"train.log must be one of {list(LOGS)}, got {self.log!r}")
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "ema_decay": 0.0 <= self.ema_decay < 1.0,
            "ema_rampup": self.ema_rampup >= 0,
            "grad_clip": self.grad_clip >= 0,
            "weight_decay": self.weight_decay >= 0,
            "log_every": self.log_every >= 1,
            "ckpt_every": self.ckpt_every >= 0,
            "num_workers": self.num_workers >= 0,
            "prefetch_factor": self.prefetch_factor >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"train.{name} = {getattr(self, name)!r} is out of range; see the "
                    "TrainConfig docstring (steps, batch_size, log_every, prefetch_factor "
                    ">= 1; lr > 0; "
                    "0 <= ema_decay < 1; the others >= 0)"
                )


def tensorboard_writer(folder: Path, step: int) -> Any:
    """torch's TensorBoard ``SummaryWriter`` into ``folder``, dropping the events a killed
    run wrote after ``step`` (the step it resumes from: the events of that step itself were
    written before its checkpoint, and are kept, as train_log.jsonl keeps its record); a
    ValueError in one sentence when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "train.log: tensorboard needs the tensorboard package: pip install tensorboard "
            '(or gmdiff\'s extra: pip install -e ".[tensorboard]"), or set train.log: jsonl'
        ) from None
    with errors_naming(folder):
        return SummaryWriter(log_dir=str(folder), purge_step=step + 1)


def _warn_rank_dropout(model: nn.Module) -> None:
    """Warn that torch's own dropout layers draw their masks per rank, so a DDP run of
    ``model`` depends on the number of processes (:class:`gmdiff.global_batch.Dropout`
    does not)."""
    names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.dropout._DropoutNd) and not isinstance(m, Dropout) and m.p > 0
    ]
    if names:
        warnings.warn(
            f"the model's torch dropout layers ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''}) draw their masks per DDP rank, so this run "
            "depends on the number of processes; gmdiff.global_batch.Dropout draws them "
            "per example of the global batch",
            stacklevel=3,
        )


def _is_tty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Trainer:
    """Train ``model`` by minimising ``loss_fn`` on ``data``; see the module docstring.

    ``data``: a tensor (N, ...), a map-style dataset, or a sampler ``(n, generator) -> x``.
    ``loss_fn(model, x0, generator=gen)``: e.g. ``functools.partial(losses.edm_loss)``.
    ``out_dir``: where ``checkpoint.pt`` and ``train_log.jsonl`` go (None: keep nothing).
    ``run_config``: what else identifies the run beyond ``config`` (model, data, loss, ...;
    a nested dict without a ``"train"`` key); stored in the checkpoint with ``config`` and
    compared on resume. After :meth:`fit`, ``trainer.model`` and ``trainer.ema`` hold the
    trained weights.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Tensor | Sampler,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        transform: Transform | None = None,
        run_config: dict | None = None,
    ) -> None:
        self.config, self.loss_fn, self.transform = config, loss_fn, transform
        self.run_config = run_config or {}
        self._in_session = False
        self._board: Any = None  # TensorBoard's writer while a session logs to it
        self._grad_norms: list[Tensor] = []  # this log window's gradient norms (TensorBoard)
        #: Without a terminal (output redirected), print one progress line on stderr per
        #: ``log_every`` steps and at least one a minute (the CLI sets it; off for chapters).
        self.progress_lines = False
        #: ``preview(ema)``: images (N, C, H, W) in [-1, 1] sampled from the EMA network,
        #: written to TensorBoard as one grid (samples/ema) after each checkpoint when
        #: train.log is "tensorboard" (score_sde's ``snapshot_sampling``, at its snapshots);
        #: :func:`gmdiff.runs.train` sets it for image data. Rank 0 only.
        self.preview: Callable[[nn.Module], Tensor] | None = None
        self.out_dir = None if out_dir is None else Path(out_dir)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if config.device == "auto":
            cuda = torch.cuda.is_available()
            self.device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        else:
            self.device = device_of_config(config.device)
        self.info = init_distributed("nccl" if self.device.type == "cuda" else "gloo")
        cuda = self.device.type == "cuda"
        if cuda and config.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cuda and config.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self._channels_last = cuda and config.channels_last
        self.model = model.to(self.device)
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self._ema_pairs = (
            [e for e in self.ema.parameters()],
            [p for p in self.model.parameters()],
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=config.adam_betas,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
            fused=cuda,
        )
        net: nn.Module = self.model
        if self.info.world_size > 1 or (dist.is_available() and dist.is_initialized()):
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        if config.compile and self.device.type == "cuda":
            net = torch.compile(net)
        self._net = net
        self._batches = Batches(data, config.batch_size, self.info, config.seed)
        if self.info.world_size > 1:
            _warn_rank_dropout(self.model)
        self.step = 0
        self.threads: list[list[int]] = []  # [first step, intra-op threads] per stretch

    # -- checkpoints ---------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT

    def save(self) -> None:
        """Write model, EMA, optimizer, step and config atomically (rank 0 only)."""
        if self.checkpoint_path is None or not self.info.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "config": asdict(self.config),
            "run": self.identity(),
            "threads": [list(r) for r in self.threads],
        }
        atomic_save(state, self.checkpoint_path)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must share with this run to be resumed by it, as a flat dict
        (``"train.batch_size"``, ``"model.net"``, ...): ``config`` without its
        :data:`RESUMABLE` fields, and ``run_config``."""
        late = {f.name: f.default for f in fields(TrainConfig) if f.name in LATE_FIELDS}
        train = {
            k: v
            for k, v in asdict(self.config).items()
            if k not in RESUMABLE and not (k in late and v == late[k])
        }
        return flatten({"train": train} | self.run_config)

    def _resume(self) -> None:
        """Continue from out_dir's checkpoint, if any, unless another run wrote it (other
        config) or it is already past ``steps``."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return
        state = read_checkpoint(path, self.device)
        step, fresh = int(state["step"]), f"to start fresh, use another out_dir or delete {path}"
        diff = differences(state.get("run", {}), self.identity())
        if diff:
            raise ValueError(
                f"checkpoint {path} was written by a run with another config "
                f"({'; '.join(diff)}; checkpoint -> now); {fresh}"
            )
        if self.config.steps < step:
            raise ValueError(
                f"train.steps = {self.config.steps} is below step {step} of checkpoint "
                f"{path}; raise train.steps to continue that run; {fresh}"
            )
        load_state(self.model, state["model"], path, fresh)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = step
        self.threads = [[int(a), int(n)] for a, n in state.get("threads", [])]

    def _truncate_log(self) -> None:
        """Keep the log records up to the current step: a killed run may have logged past
        its last checkpoint, or left half a line."""
        path = self.out_dir / LOG
        if not path.is_file():
            return
        lines = path.read_text().splitlines()
        keep = []
        for line in lines:
            with contextlib.suppress(ValueError):
                if json.loads(line)["step"] <= self.step:
                    keep.append(line)
        if len(keep) < len(lines):
            atomic_write(path, "".join(f"{line}\n" for line in keep))

    @contextlib.contextmanager
    def session(self, resume: bool = True) -> Iterator[Trainer]:
        """Hold out_dir for one run: lock it (see :func:`lock_dir`), remove the temp
        files of a killed save, then resume from its checkpoint (refused when another run
        wrote it) and cut the log back to the checkpoint's step; or, without ``resume``,
        delete both and start afresh. :meth:`fit` opens a session when none is open; open
        one yourself to act after these checks and before training (the CLI writes
        config.yaml there)."""
        main = self.out_dir is not None and self.info.is_main
        with lock_dir(self.out_dir) if main else contextlib.nullcontext():
            if main:
                remove_orphans(self.checkpoint_path, self.out_dir / LOG)
            if resume:
                self._resume()
            else:
                self.threads = []
            if not resume and main:
                self.checkpoint_path.unlink(missing_ok=True)
                (self.out_dir / LOG).unlink(missing_ok=True)
                shutil.rmtree(self.out_dir / BOARD, ignore_errors=True)
            if main:
                self._truncate_log()
            if main and self.config.log == "tensorboard":
                self._board = tensorboard_writer(self.out_dir / BOARD, self.step)
            self._in_session = True
            try:
                yield self
            finally:
                self._in_session = False
                if self._board is not None:
                    self._board.close()
                    self._board = None

    # -- one step --------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        w = self.config.warmup_steps
        return self.config.lr * (min(1.0, (step + 1) / w) if w else 1.0)

    def _train_step(self, step: int, batch: Tensor | None = None) -> Tensor:
        """One optimizer step; ``batch`` is this step's batch when a loader read it."""
        cfg = self.config
        seed = step_seed(cfg.seed, step, "global")  # torch's global generators (dropout)
        torch.default_generator.manual_seed(seed)  # what torch.manual_seed sets on the CPU,
        if self.device.type == "cuda":  # without its ~0.2 ms of lazy seeding of CUDA, XPU
            torch.cuda.manual_seed_all(seed)  # and MTIA (a stack trace each) on CPU runs
        g_data = torch.Generator().manual_seed(step_seed(cfg.seed, step, "data"))
        g_noise = torch.Generator(self.device).manual_seed(step_seed(cfg.seed, step, "noise"))
        with self._batches.rows():
            x0 = self._batches(step, g_data) if batch is None else batch
            if self.transform is not None:
                x0 = self.transform(x0, g_data)
        x0 = x0.to(self.device, non_blocking=True)
        if self._channels_last and x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step)
        bf16 = cfg.bf16 and self.device.type == "cuda"
        with (
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16),
            batch_index(step),
            self._batches.rows(),
        ):
            out = self.loss_fn(self._net, x0, generator=g_noise)
        loss = out["loss"] if isinstance(out, dict) else out
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        elif self._board is not None:  # the norm only for TensorBoard: no extra pass otherwise
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])
            )
        if self._board is not None:
            self._grad_norms.append(norm.detach().float())
        self.optimizer.step()
        with torch.no_grad():
            ema_update(*self._ema_pairs, ema_decay_at(cfg, step))
            for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                e.copy_(b)
        return loss.detach().float()

    def _raise_if_nonfinite(self, first_bad: Tensor, sentinel: int) -> None:
        if self.info.world_size > 1:
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        bad = int(first_bad)
        if bad != sentinel:
            raise FloatingPointError(
                f"the loss became NaN or inf at step {bad}; the last checkpoint was kept; "
                "lower train.lr, set train.grad_clip > 0 or a longer warm-up, or check the data"
            )

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> list[dict]:
        """Train up to ``config.steps`` total steps in a :meth:`session` (opened here
        unless one is open): continuing from ``out_dir``'s checkpoint when ``resume``,
        otherwise from the current weights with no checkpoint and a new log. Returns the
        log records written this call (rank 0's mean loss over each ``log_every`` window)."""
        if not self._in_session:
            with self.session(resume):
                return self.fit()
        cfg = self.config
        self.model.train()
        n = torch.get_num_threads()
        if not self.threads or self.threads[-1][1] != n:
            self.threads.append([self.step, n])
        sentinel = torch.iinfo(torch.int64).max
        first_bad = torch.full((), sentinel, dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        n_sum, history = 0, []
        with tqdm(
            range(self.step, cfg.steps),
            initial=self.step,
            total=cfg.steps,
            desc="train",
            disable=None if self.info.is_main else True,
        ) as bar:
            batches = self._loader()
            lines = self.progress_lines and self.info.is_main and not _is_tty(sys.stderr)
            last_line = time.monotonic()
            for step in bar:
                if batches is None:  # (tests patch _train_step with a one-argument step)
                    loss = self._train_step(step)
                else:
                    loss = self._train_step(step, next(batches))
                finite = torch.isfinite(loss)
                first_bad = torch.where(finite, first_bad, first_bad.clamp(max=step))
                loss_sum += torch.where(finite, loss, 0.0)
                n_sum += 1
                self.step = step + 1
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    self._raise_if_nonfinite(first_bad, sentinel)
                    rec = {"step": self.step, "loss": loss_sum.item() / n_sum, "lr": self._lr(step)}
                    history.append(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.4g}")
                    self._log(rec)
                    loss_sum.zero_()
                    n_sum = 0
                    if lines:
                        print(
                            f"train: step {self.step}/{cfg.steps}, loss {rec['loss']:.4g}, "
                            f"lr {rec['lr']:.3g}",
                            file=sys.stderr,
                            flush=True,
                        )
                        last_line = time.monotonic()
                if lines and time.monotonic() - last_line >= 60:
                    print(f"train: step {self.step}/{cfg.steps}", file=sys.stderr, flush=True)
                    last_line = time.monotonic()
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last:
                    self._raise_if_nonfinite(first_bad, sentinel)
                    self.save()
                    self._board_samples()
        return history

    def _loader(self) -> Iterator[Tensor] | None:
        """A worker DataLoader over the remaining steps when ``num_workers`` > 0 and the
        data is a map-style dataset (not a tensor or a sampler); else None."""
        b, cfg = self._batches, self.config
        if cfg.num_workers == 0 or not b.finite or isinstance(b.data, Tensor):
            return None
        pin = self.device.type == "cuda"
        return b.loader(self.step, cfg.steps, cfg.num_workers, cfg.prefetch_factor, pin)

    def _log(self, rec: dict) -> None:
        if self.out_dir is None or not self.info.is_main:
            return
        path = self.out_dir / LOG
        with errors_naming(path), open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._board is not None:
            for key in ("loss", "lr"):
                self._board.add_scalar(f"train/{key}", rec[key], rec["step"])
            if self._grad_norms:  # the gradient norm (before clipping), mean over the window
                norm = float(torch.stack(self._grad_norms).mean())
                self._board.add_scalar("train/grad_norm", norm, rec["step"])
                self._grad_norms.clear()
            share = ema_init_share(self.config, rec["step"])
            self._board.add_scalar("train/ema_init_share", share, rec["step"])
            self._board.flush()

    def _board_samples(self) -> None:
        """The grid of :attr:`preview`'s EMA samples at this step, when TensorBoard logs."""
        if self._board is None or self.preview is None or not self.info.is_main:
            return
        u8 = to_uint8(self.preview(self.ema))
        self._board.add_image(
            "samples/ema", viewable_grid(u8, len(u8)), self.step, dataformats="HWC"
        )
        self._board.flush()
