"""A bank of K runs that differ only in ``train.seed``, trained as one batched ensemble on
the CPU (issue 27; :func:`gmdiff.runs.load_or_train_many` chooses it for the runs of a
chapter's bank that qualify, ``$GMDIFF_BANK=serial`` turns it off): the members'
parameters stacked along a leading axis (``torch.func.stack_module_state``), one forward and backward of the loss for all members
(``torch.func.functional_call`` under ``torch.vmap``), one AdamW over the stacked
parameters. It saves the per-operator overhead of K separate steps, not their FLOPs; how
much, for K = 3 and 8 MLPs 3 x 128 at batch 256 on one thread, is measured by
``python -m benchmarks.ensemble`` against K Trainer runs and shown on the performance page
(the gain grows with K and shrank when the Trainer's own step got cheaper; vmap turns the
matmuls into batched ``bmm``).

A member is the run a single :class:`gmdiff.train.Trainer` trains from the same config,
up to float round-off:

* randomness: each member draws its batch (stream "data") and the loss's noise (stream
  "noise") from its own generators seeded by :func:`gmdiff.distributed.step_seed` of its seed
  and the step, in the Trainer's order. The draws are made outside ``vmap``, member by
  member: the loss is run once per member under :class:`_Record` with a network stub that
  stops it at its first network call, which records every tensor the loss drew from its
  generator; then the loss runs under ``vmap`` with :class:`_Replay`, which hands it the
  recorded draws in the same order instead of drawing. A loss that draws after (or inside)
  the network call -- SMD's eta, GM-DDPM's paths -- cannot be replayed and is refused
  before training (:data:`LOSSES`), and so is a network with dropout (a draw inside the
  network call);
* optimisation: AdamW is elementwise, so one optimizer over the stacked parameters is K
  optimizers; warm-up as :meth:`Trainer._lr`; the gradient is clipped per member to
  ``grad_clip`` (the global norm over that member's tensors, as
  ``torch.nn.utils.clip_grad_norm_`` computes it);
* EMA per member, with :func:`gmdiff.ema.ema_decay_at` (EDM's ramp, Karras et al. 2022,
  ``ema_rampup_ratio`` of NVlabs/edm's training loop, when ``train.ema_rampup`` > 0).

The stacked matmuls (batched ``bmm`` instead of ``mm``) and norms sum in another order, so
the weights agree with the solo run's at float32 round-off, not bit for bit (the tolerance
is measured in tests/test_ensemble.py).

Each member ends as a checkpoint of the Trainer's own format (written by the member's
Trainer: model, EMA, optimizer state, step, config identity) and a train_log.jsonl in the
folder :func:`gmdiff.runs.run_dir` names, so :func:`gmdiff.runs.load_or_train` loads it,
and a member checkpointed part-way (``train.ckpt_every``) resumes on the solo path.

Not covered (yet): resuming a bank as a bank (a member found part-trained is left to
:func:`gmdiff.runs.load_or_train`'s solo resume), GPUs and DDP, dropout or any randomness
from torch's global generator (``vmap`` raises on it), banks that differ in anything
but the seed, sampling a bank, snapshots.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state
from torch.overrides import TorchFunctionMode

from gmdiff import config as C
from gmdiff import runs, threads
from gmdiff.config import RunConfig
from gmdiff.distributed import step_seed
from gmdiff.ema import ema_decay_at, ema_update
from gmdiff.noise import batch_index
from gmdiff.train import Trainer

#: The losses whose random draws all come before the network call, which the bank replays
#: (see the module docstring); SMD's and GM-DDPM's draw inside or after it.
LOSSES = ("eps", "edm", "dsm")


# --------------------------------------------------------------------------------------
# Which banks can be batched
# --------------------------------------------------------------------------------------


def check_bank(cfgs: Sequence[RunConfig]) -> None:
    """Refuse, in one sentence, a bank that is not K >= 1 CPU runs of a replayable loss
    (:data:`LOSSES`) and a network without dropout, differing in ``train.seed`` alone,
    with distinct seeds, without the Trainer's bf16, compile or TensorBoard log (which
    the bank does not implement)."""
    cfgs = list(cfgs)
    if not cfgs:
        raise ValueError("an ensemble needs at least one run config")
    first = _without_seed(cfgs[0])
    for i, cfg in enumerate(cfgs[1:], start=1):
        diff = _differences(first, _without_seed(cfg))
        if diff:
            raise ValueError(
                f"run {i} of the bank differs from run 0 in more than train.seed "
                f"({'; '.join(diff[:3])}); train non-homogeneous runs one by one "
                "(gmdiff.runs.load_or_train_many)"
            )
    seeds = [cfg.train.seed for cfg in cfgs]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"the bank's seeds {seeds} repeat one; give each member its own seed")
    loss = cfgs[0].loss.name
    if loss not in LOSSES:
        raise ValueError(
            f"loss.name = {loss!r} draws random numbers inside or after the network call, "
            f"which a batched ensemble cannot replay; batch only {list(LOSSES)} or train "
            "these runs one by one"
        )
    t = cfgs[0].train
    unsupported = [k for k, on in (("bf16", t.bf16), ("compile", t.compile)) if on]
    unsupported += [f"log: {t.log}"] if t.log != "jsonl" else []
    if unsupported:
        raise ValueError(
            f"the batched ensemble does not implement train.{', train.'.join(unsupported)}; "
            "train these runs one by one"
        )
    dropout = _dropout(cfgs[0])
    if dropout > 0:
        raise ValueError(
            f"the network {cfgs[0].model.net!r} has dropout {dropout:g}, a random draw inside "
            "the network call that a batched ensemble cannot replay; set "
            "model.overrides.dropout: 0 or train these runs one by one"
        )
    if not runs._on_cpu(cfgs[0]):
        raise ValueError(
            f"train.device = {cfgs[0].train.device!r} is not the CPU; the batched ensemble "
            "trains on the CPU only (set train.device: cpu or train the runs one by one)"
        )


def _dropout(cfg: RunConfig) -> float:
    """The dropout probability of ``cfg``'s network (of its base, for an SMD or GM-DDPM
    network); 0 for a network without dropout."""
    with torch.random.fork_rng(devices=[]):  # building initialises a network
        net_cfg = runs.build(cfg).net_config
    parts = (net_cfg, getattr(net_cfg, "base", None))
    return max(float(getattr(p, "dropout", 0.0) or 0.0) for p in parts)


def _without_seed(cfg: RunConfig) -> dict[str, Any]:
    plain = C.plain(cfg)
    plain.pop("out_dir")
    plain["train"].pop("seed")
    return plain


def _differences(a: dict, b: dict) -> list[str]:
    from gmdiff.storage import differences, flatten

    return differences(flatten(a), flatten(b))


# --------------------------------------------------------------------------------------
# Recording a loss's random draws, and replaying them under vmap
# --------------------------------------------------------------------------------------


class _NetworkCalled(Exception):
    """Raised by the recording stub at the loss's first network call."""


def _stub(*args: Any, **kwargs: Any) -> Tensor:
    raise _NetworkCalled


class _Record(TorchFunctionMode):
    """Runs every torch call; keeps the output of each that was given a ``generator``."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[tuple[Any, Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if kwargs.get("generator") is not None:
            self.draws.append((func, out))
        return out


class _Replay(TorchFunctionMode):
    """Answers each torch call given a ``generator`` with the next recorded draw (the same
    function must ask for it); runs every other call."""

    def __init__(self, funcs: Sequence[Any], draws: Sequence[Tensor]) -> None:
        super().__init__()
        self.funcs, self.draws, self.i = funcs, draws, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is None:
            return func(*args, **kwargs)
        if self.i >= len(self.draws) or self.funcs[self.i] is not func:
            raise ValueError(
                f"the loss drew with {getattr(func, '__name__', func)} where the recorded "
                "draws before its network call did not (it draws after or inside the "
                "network call); train these runs one by one"
            )
        self.i += 1
        return self.draws[self.i - 1]


def record_draws(
    loss_fn: Callable, x0: Tensor, generator: torch.Generator, step: int
) -> tuple[list[Any], list[Tensor]]:
    """The torch functions and outputs of every draw ``loss_fn(model, x0, generator=...)``
    makes from ``generator`` before it calls the model (the loss stops there)."""
    with batch_index(step), torch.no_grad(), _Record() as rec:
        try:
            loss_fn(_stub, x0, generator=generator)
        except _NetworkCalled:
            pass
        else:
            raise ValueError("the loss never called the network; it cannot be batched")
    return [f for f, _ in rec.draws], [t for _, t in rec.draws]


# --------------------------------------------------------------------------------------
# The bank
# --------------------------------------------------------------------------------------


class Bank:
    """K members' :class:`~gmdiff.train.Trainer` objects (built, not fitted; same config
    but for the seed, fresh: step 0) trained together; :meth:`fit` trains to
    ``train.steps``, writes the stacked weights, EMA and optimizer state back into each
    member's Trainer and saves its checkpoint where the Trainer has an out_dir (at every
    ``ckpt_every`` too). After :meth:`fit` each ``trainers[k].model`` / ``.ema`` hold that
    member's weights, as after its own ``fit``."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        self.trainers = list(trainers)
        if not self.trainers:
            raise ValueError("a bank needs at least one member's Trainer")
        t0 = self.trainers[0]
        self.config, self.K = t0.config, len(self.trainers)
        for t in self.trainers:
            if t.device.type != "cpu" or t.info.world_size > 1:
                raise ValueError("the batched ensemble trains on one CPU process only")
            if t.step != 0:
                raise ValueError(
                    f"member with seed {t.config.seed} is at step {t.step}, not 0; a bank "
                    "starts fresh (resume part-trained members one by one)"
                )
            t.model.train()
        self.loss_fn = t0.loss_fn
        self.base = t0.model  # the module functional_call runs with each member's tensors
        params, buffers = stack_module_state([t.model for t in self.trainers])
        self.params, self.buffers = params, buffers
        self.ema = {k: v.detach().clone() for k, v in params.items()}
        c = self.config
        self.optimizer = torch.optim.AdamW(
            list(params.values()),
            lr=c.lr,
            betas=c.adam_betas,
            eps=c.adam_eps,
            weight_decay=c.weight_decay,
        )
        self.step = 0
        self._forward = torch.vmap(self._member_loss, randomness="error")

    def _member_loss(self, params: dict, buffers: dict, x0: Tensor, draws: list) -> Tensor:
        """One member's loss (under vmap): the loss with the member's recorded draws and
        its network as ``functional_call`` of the base module on its tensors."""

        def net(*args: Any, **kwargs: Any) -> Tensor:
            return functional_call(self.base, (params, buffers), args, kwargs)

        with _Replay(self._funcs, draws):
            out = self.loss_fn(net, x0, generator=self._dummy)
        return out["loss"] if isinstance(out, dict) else out

    def _draw(self, step: int) -> tuple[Tensor, list[Tensor]]:
        """Every member's batch and loss draws of ``step``, from its own generators."""
        batches, draws = [], []
        for t in self.trainers:
            seed = t.config.seed
            g_data = torch.Generator().manual_seed(step_seed(seed, step, "data"))
            g_noise = torch.Generator().manual_seed(step_seed(seed, step, "noise"))
            x0 = t._batches(step, g_data)
            if t.transform is not None:
                x0 = t.transform(x0, g_data)
            funcs, member_draws = record_draws(self.loss_fn, x0, g_noise, step)
            batches.append(x0)
            draws.append(member_draws)
        self._funcs = funcs
        return torch.stack(batches), [torch.stack(d) for d in zip(*draws, strict=True)]

    def _clip(self) -> None:
        """Scale each member's gradient to global norm <= grad_clip, as
        ``clip_grad_norm_`` does for a single model (coefficient max / (norm + 1e-6))."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        per_tensor = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1)  # (K, n)
        total = per_tensor.norm(dim=1)
        coef = (self.config.grad_clip / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.ndim - 1))))

    def train_step(self, step: int) -> Tensor:
        """One optimizer step of every member; returns their losses (K,)."""
        c = self.config
        self._dummy = torch.Generator()
        with batch_index(step):
            x0, draws = self._draw(step)
            losses = self._forward(self.params, self.buffers, x0, draws)
        lr = c.lr * (min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members are independent: each gets its own gradient
        if c.grad_clip > 0:
            self._clip()
        self.optimizer.step()
        with torch.no_grad():
            ema_update(list(self.ema.values()), list(self.params.values()), ema_decay_at(c, step))
        return losses.detach()

    def fit(self) -> list[list[dict]]:
        """Train every member to ``train.steps``; returns each member's log records (mean
        loss per ``log_every`` window, as :meth:`Trainer.fit`), also appended to its
        train_log.jsonl where it has an out_dir."""
        c = self.config
        loss_sum, n_sum = torch.zeros(self.K), 0
        history: list[list[dict]] = [[] for _ in self.trainers]
        n_threads = torch.get_num_threads()
        for t in self.trainers:
            t.threads = [[0, n_threads]]
        for step in range(self.step, c.steps):
            losses = self.train_step(step)
            bad = ~torch.isfinite(losses)
            if bad.any():
                seeds = [self.trainers[k].config.seed for k in bad.nonzero().flatten().tolist()]
                raise FloatingPointError(
                    f"the loss of the members with seeds {seeds} became NaN or inf at step "
                    f"{step}; lower train.lr, set train.grad_clip > 0 or a longer warm-up"
                )
            loss_sum += losses
            n_sum += 1
            self.step = step + 1
            last = self.step == c.steps
            if self.step % c.log_every == 0 or last:
                lr = self.optimizer.param_groups[0]["lr"]
                for k, t in enumerate(self.trainers):
                    rec = {"step": self.step, "loss": loss_sum[k].item() / n_sum, "lr": lr}
                    history[k].append(rec)
                    t._log(rec)
                loss_sum.zero_()
                n_sum = 0
            if (c.ckpt_every and self.step % c.ckpt_every == 0) or last:
                self.write_back()
                for t in self.trainers:
                    t.save()
        return history

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy member k's slice of the stacked weights, EMA, buffers and AdamW state into
        ``trainers[k]`` (its model, EMA, optimizer, step), in the Trainer's own layout."""
        names = list(self.params)
        stacked_state = [self.optimizer.state.get(self.params[n], {}) for n in names]
        lr = self.optimizer.param_groups[0]["lr"]
        for k, t in enumerate(self.trainers):
            own = dict(t.model.named_parameters())
            for name in names:
                own[name].copy_(self.params[name][k])
            for name, b in t.model.named_buffers():
                b.copy_(self.buffers[name][k])
            ema = dict(t.ema.named_parameters())
            for name in names:
                ema[name].copy_(self.ema[name][k])
            for name, b in t.ema.named_buffers():
                b.copy_(self.buffers[name][k])
            for name, st in zip(names, stacked_state, strict=True):
                t.optimizer.state[own[name]] = {
                    key: v.clone() if key == "step" else v[k].clone() for key, v in st.items()
                }
            for group in t.optimizer.param_groups:
                group["lr"] = lr
            t.step = self.step


# --------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------


def bank_problem(cfgs: Sequence[RunConfig]) -> str | None:
    """Why ``cfgs`` cannot be trained as one bank (the sentence :func:`check_bank` raises),
    or None when they can: how :func:`gmdiff.runs.load_or_train_many` chooses its path."""
    try:
        check_bank(cfgs)
    except ValueError as err:
        return str(err)
    return None


def train_bank(
    cfgs: Sequence[RunConfig], name: str = "run", *, cache_dir: str | Path | None = None
) -> None:
    """Train the members of a homogeneous bank (:func:`check_bank`) that have no checkpoint
    in the cache together as one batched ensemble (:class:`Bank`), each into its own
    :func:`gmdiff.runs.run_dir` (checkpoint, train_log.jsonl), on one thread (``train.threads``
    "auto", as :func:`gmdiff.runs._fit`) or ``train.threads``. Members already trained or
    part-trained are left alone (:func:`gmdiff.runs.load_or_train` loads or resumes them)."""
    cfgs = list(cfgs)
    check_bank(cfgs)
    for cfg in cfgs:
        runs.check_ema(cfg)
    setting = cfgs[0].train.threads
    with contextlib.ExitStack() as stack:
        stack.enter_context(runs.claimed(runs.run_dir(cfg, name, cache_dir) for cfg in cfgs))
        fresh = [cfg for cfg in cfgs if runs._finished_at(runs.run_dir(cfg, name, cache_dir)) < 0]
        if not fresh:
            return
        stack.enter_context(threads.using(1 if setting == "auto" else setting))
        stack.enter_context(torch.random.fork_rng(devices=[]))
        trainers = []
        for cfg in fresh:
            folder = runs.run_dir(cfg, name, cache_dir)
            run = runs.build(dataclasses.replace(cfg, out_dir=str(folder)))
            trainer = runs._trainer(run, folder)
            stack.enter_context(trainer.session(resume=True))  # locks; step stays 0
            trainers.append(trainer)
        Bank(trainers).fit()


def load_or_train_bank(
    cfgs: Sequence[RunConfig], name: str = "run", *, cache_dir: str | Path | None = None
) -> list[runs.Run]:
    """:func:`gmdiff.runs.load_or_train` of each config of a homogeneous bank
    (:func:`check_bank`), the members with no checkpoint in the cache first trained
    together as one batched ensemble (:func:`train_bank`). Members already trained are
    loaded; members found part-trained resume on the solo path."""
    train_bank(cfgs, name, cache_dir=cache_dir)
    return [runs.load_or_train(cfg, name, cache_dir=cache_dir)[0] for cfg in cfgs]
