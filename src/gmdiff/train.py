"""One training loop for every model in the library: seeds, EMA, warm-up, gradient
clipping, bf16 autocast, optional torch.compile, DDP under ``torchrun``, atomic
checkpoints and exact resume.

Randomness. Every random draw of step k on rank r comes from generators seeded by a hash
of (seed, k, r, stream): the batch indices ("data"), the loss's noise ("noise") and
torch's global generator (dropout; "global"). A step's randomness is therefore a function
of its index alone, so a run resumed from a checkpoint at step k draws exactly what the
uninterrupted run drew, with no generator state to save; the checkpoint holds the model,
its EMA, the optimizer and the step. On CPU an interrupted-then-resumed run reaches
bit-identical weights (tested); on CUDA, non-deterministic kernels may still differ.

Distributed. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the trainer joins
the process group (NCCL on CUDA, gloo on CPU), places the model on ``cuda:LOCAL_RANK``,
wraps it in DistributedDataParallel and gives each rank its own slice of the global batch
(``batch_size`` is the global batch). Only rank 0 writes checkpoints, logs and shows the
progress bar. Launch with ``torchrun --nproc_per_node N -m gmdiff.cli train --config ...``.

Switches ``bf16`` (autocast to bfloat16) and ``compile`` (torch.compile) act on CUDA only
and are no-ops on CPU, where they would slow the small models this project trains.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto warns in kernels without ipywidgets

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"

LossFn = Callable[..., Tensor | dict[str, Tensor]]
"""``loss_fn(model, x0, generator=gen)`` -> scalar loss, or a dict with key ``"loss"``."""

Sampler = Callable[[int, torch.Generator], Tensor]
"""``sample(n, generator)`` -> n fresh training examples (toy distributions)."""

Transform = Callable[[Tensor, torch.Generator], Tensor]
"""``transform(batch, generator)`` -> augmented batch (e.g. data.random_hflip)."""


@dataclass
class TrainConfig:
    """Optimisation settings. ``batch_size`` is the global batch over all DDP ranks.

    ``lr`` ramps linearly from lr/warmup_steps to lr over ``warmup_steps`` steps (the
    warm-up of Ho et al. 2020's and score_sde's released code, 5000 steps on CIFAR-10);
    ``grad_clip`` is the max global gradient norm (0 disables it);
    ``ema_decay`` the EMA decay per step; ``ckpt_every`` = 0 writes a checkpoint only at
    the end; ``device`` "auto" picks cuda:LOCAL_RANK when CUDA is available, else cpu.
    """

    steps: int
    batch_size: int
    lr: float = 2e-4
    warmup_steps: int = 0
    ema_decay: float = 0.9999
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

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "ema_decay": 0.0 <= self.ema_decay < 1.0,
            "grad_clip": self.grad_clip >= 0,
            "weight_decay": self.weight_decay >= 0,
            "log_every": self.log_every >= 1,
            "ckpt_every": self.ckpt_every >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"train.{name} = {getattr(self, name)!r} is out of range; see the "
                    "TrainConfig docstring (steps, batch_size, log_every >= 1; lr > 0; "
                    "0 <= ema_decay < 1; the others >= 0)"
                )


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; a no-op returning rank 0
    of 1 otherwise. ``backend`` defaults to NCCL when CUDA is available, else gloo. Safe
    to call twice."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def step_seed(seed: int, step: int, rank: int, stream: str) -> int:
    """A 63-bit seed for one random stream of one step on one rank."""
    digest = hashlib.blake2b(f"{seed}/{step}/{rank}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def atomic_save(obj: object, path: Path) -> None:
    """torch.save to a temp file in the same directory, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(
    path: str | Path, model: nn.Module, *, ema: bool = True, map_location: str = "cpu"
) -> int:
    """Load the EMA (default) or raw weights of a trainer checkpoint into ``model``;
    returns the step it was written at."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train first (gmdiff train) or fix the path"
        )
    state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state["ema" if ema else "model"])
    return int(state["step"])


class _Batches:
    """The local batch of step k: a slice of a global batch drawn without replacement
    epoch by epoch (per-epoch permutations seeded by (seed, epoch)) from a tensor or a
    map-style dataset, or fresh draws from a sampler. Rank r takes rows
    [r b, (r + 1) b) of the global batch, like DistributedSampler."""

    def __init__(self, data: Tensor | Sampler, global_batch: int, info: DistInfo, seed: int):
        if global_batch % info.world_size:
            raise ValueError(
                f"batch_size={global_batch} is not divisible by the {info.world_size} DDP "
                "ranks; choose a multiple of the number of processes"
            )
        self.data, self.G, self.info, self.seed = data, global_batch, info, seed
        self.b = global_batch // info.world_size
        self.finite = hasattr(data, "__len__") and hasattr(data, "__getitem__")
        if not self.finite and not callable(data):
            raise ValueError(
                f"data must be a tensor, a map-style dataset or a sampler(n, generator), "
                f"got {type(data).__name__}"
            )
        if self.finite and len(data) == 0:
            raise ValueError("data is empty; check the dataset path or loader")
        self._perms: dict[int, Tensor] = {}

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(step_seed(self.seed, epoch, 0, "epoch"))
            self._perms = {epoch: torch.randperm(len(self.data), generator=g)}
        return self._perms[epoch]

    def __call__(self, step: int, generator: torch.Generator) -> Tensor:
        if not self.finite:
            return self.data(self.b, generator)
        N = len(self.data)
        start = step * self.G + self.info.rank * self.b
        pos = torch.arange(start, start + self.b)
        idx = torch.cat(
            [self._perm(int(e))[pos[pos // N == e] % N] for e in torch.unique(pos // N)]
        )
        if isinstance(self.data, Tensor):
            return self.data[idx]
        return torch.stack([self.data[int(i)] for i in idx])


class Trainer:
    """Train ``model`` by minimising ``loss_fn`` on ``data``; see the module docstring.

    ``data``: a tensor (N, ...), a map-style dataset, or a sampler ``(n, generator) -> x``.
    ``loss_fn(model, x0, generator=gen)``: e.g. ``functools.partial(losses.edm_loss)``.
    ``out_dir``: where ``checkpoint.pt`` and ``train_log.jsonl`` go (None: keep nothing).
    After :meth:`fit`, ``trainer.model`` and ``trainer.ema`` hold the trained weights.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Tensor | Sampler,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.config, self.loss_fn, self.transform = config, loss_fn, transform
        self.out_dir = None if out_dir is None else Path(out_dir)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if config.device == "auto":
            cuda = torch.cuda.is_available()
            self.device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        else:
            self.device = torch.device(config.device)
        self.info = init_distributed("nccl" if self.device.type == "cuda" else "gloo")
        self.model = model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=config.adam_betas,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
            fused=self.device.type == "cuda",
        )
        net: nn.Module = self.model
        if self.info.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        if config.compile and self.device.type == "cuda":
            net = torch.compile(net)
        self._net = net
        self._batches = _Batches(data, config.batch_size, self.info, config.seed)
        self.step = 0

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
        }
        atomic_save(state, self.checkpoint_path)

    def _resume(self) -> None:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])

    # -- one step --------------------------------------------------------------------------
    def _lr(self, step: int) -> float:
        w = self.config.warmup_steps
        return self.config.lr * (min(1.0, (step + 1) / w) if w else 1.0)

    def _train_step(self, step: int) -> Tensor:
        cfg, r = self.config, self.info.rank
        torch.manual_seed(step_seed(cfg.seed, step, r, "global"))
        g_data = torch.Generator().manual_seed(step_seed(cfg.seed, step, r, "data"))
        g_noise = torch.Generator(self.device).manual_seed(step_seed(cfg.seed, step, r, "noise"))
        x0 = self._batches(step, g_data)
        if self.transform is not None:
            x0 = self.transform(x0, g_data)
        x0 = x0.to(self.device, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step)
        bf16 = cfg.bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self.loss_fn(self._net, x0, generator=g_noise)
        loss = out["loss"] if isinstance(out, dict) else out
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1.0 - cfg.ema_decay)
            for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                e.copy_(b)
        return loss.detach().float()

    def _raise_if_nonfinite(self, first_bad: Tensor, sentinel: int) -> None:
        if self.info.world_size > 1:
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        bad = int(first_bad)
        if bad != sentinel:
            raise FloatingPointError(
                f"the loss became NaN or inf at step {bad}; the last checkpoint was kept. "
                "Lower train.lr, set train.grad_clip > 0 or a longer warm-up, or check the data."
            )

    # -- the loop --------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> list[dict]:
        """Train up to ``config.steps`` total steps, continuing from ``out_dir``'s
        checkpoint when ``resume`` (otherwise from the current weights, with a new log). Returns the log records written this call (rank 0's
        mean loss over each ``log_every`` window)."""
        cfg = self.config
        if resume:
            self._resume()
        elif self.out_dir is not None and self.info.is_main:
            (self.out_dir / LOG).unlink(missing_ok=True)  # a fresh run starts a fresh log
        self.model.train()
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
            for step in bar:
                loss = self._train_step(step)
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
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last:
                    self._raise_if_nonfinite(first_bad, sentinel)
                    self.save()
        return history

    def _log(self, rec: dict) -> None:
        if self.out_dir is None or not self.info.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")
