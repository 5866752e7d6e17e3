"""How many intra-op threads a run uses on the CPU: the ``train.threads`` setting.

``train.threads`` (``--threads`` on the command line) is ``"auto"`` (the default) or a
whole number >= 1. It sets torch's intra-op thread count for ``gmdiff train``, ``sample``
and ``evaluate`` of that run (:func:`gmdiff.runs.train`, :mod:`gmdiff.commands`); the
previous count is restored afterwards.

``auto`` picks, from the size of the work, what ``make bench`` measured (the *threads*
rows of ``book/performance.md``, ``benchmarks/threads.py``): **one thread** when a model
call of the command (forward at the command's batch: ``train.batch_size``, or
``sample.batch`` capped at the number of examples) costs less than :data:`AUTO_FLOPS`;
otherwise :func:`default_threads` (``$OMP_NUM_THREADS`` when set, else the cores this
process may use), so that a large model can use the cores a machine has free. A run on
CUDA keeps the default.

The command line (``gmdiff.cli``) also sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is
loaded, unless the variable is already set (:func:`prefer_passive_wait`): an OpenMP
worker that waits at a barrier then sleeps instead of spinning. That was the collapse of
issue 31 (a toy step took 0.9 s on 2 threads instead of 0.05 s on one while another job
held the cores): with OpenMP's default wait, which spins before it sleeps, a step on 2
threads took 3 to 15 times as long as on one on the shared 2-core machine, with and
without a synthetic load, for the toy MLP and the digits U-Net alike; with the passive
wait 0.9 to 1.1 times (``make bench``). It must be set before the OpenMP runtime starts, so a library call
after ``import torch`` cannot do it: set it in your environment when you use the library
from your own script with more than one thread.

Numbers. The thread count can change the last bits of a run: a convolution's
weight gradient sums over the batch in an order that depends on how the batch is split
(the 8x8 digits U-Net differs by ~4e-9 after 3 steps at 1 and 2 threads), so it is part of
what a run records: the checkpoint holds the count each range of steps ran with
(``checkpoint["threads"]``, a list of ``[first step, threads]``), ``samples.pt`` and
``metrics.json`` the count that drew and scored them, and ``out_dir/config.yaml`` the
setting. ``auto`` depends only on the config and on :func:`default_threads`, never on the
machine's load, so a run stays determined by its config, seed and machine. (Measured:
``configs/toy_gmm.yaml``'s MLP trains to bit-identical weights and EMA at 1 and 2 threads
over 50 steps, on this machine's CPU.) The chapters' model cache
(:func:`gmdiff.runs.load_or_train`) trains ``auto`` runs on one thread, so their weights do
not depend on the machine's core count.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

#: ``auto``'s threshold: forward FLOPs of one model call (torch.utils.flop_counter's count,
#: a multiply-add as 2) below which a run uses one thread. Measured by ``make bench``
#: (benchmarks/threads.py) on the shared 2-core machine: configs/toy_gmm.yaml's MLP step
#: (0.28 GFLOP a call at batch 512) gained nothing from a second thread (2 threads / 1:
#: 1.10 without extra load, 1.04 under it); the 8x8 digits U-Net step
#: (configs/digits_edm.yaml, 3.9 GFLOP at batch 128) ran about as fast on two (1.08
#: without, 0.93 under load), so it keeps the default, which costs nothing there and lets
#: a machine with free cores use them. The threshold lies between the two; these rows do
#: not pin down where in that bracket two threads start to pay on an idle machine.
AUTO_FLOPS = 1e9

WAIT_ENV = "OMP_WAIT_POLICY"


def check(value: Any, where: str = "train.threads") -> int | str:
    """``value`` as a threads setting (``"auto"`` or an int >= 1), else a one-sentence
    ValueError naming ``where``. A string of digits (from the command line) is an int."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"{where} must be 'auto' or a whole number >= 1, got {value!r}")


def default_threads() -> int:
    """torch's own choice at start-up: ``$OMP_NUM_THREADS`` when it is a whole number >= 1,
    else the number of cores this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return len(os.sched_getaffinity(0))


def choose(setting: int | str, flops: float, cuda: bool = False) -> int:
    """The intra-op thread count of a command: ``setting`` when it is a number; for
    ``"auto"``, 1 when a model call costs less than :data:`AUTO_FLOPS` forward FLOPs on
    the CPU, else :func:`default_threads` (always on CUDA)."""
    setting = check(setting)
    if setting != "auto":
        return setting
    if not cuda and flops < AUTO_FLOPS:
        return 1
    return default_threads()


def forward_flops(model: Any, shape: tuple[int, ...], batch: int) -> float:
    """Forward FLOPs of ``model(x, sigma)`` on ``batch`` examples of ``shape``: counted on
    one example (zeros, sigma = 1, no gradients, the caller's random state kept) and
    multiplied by ``batch``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    kw = {"device": p.device, "dtype": p.dtype} if p is not None else {}
    x, sigma = torch.zeros((1, *shape), **kw), torch.ones(1, **kw)
    with (
        torch.random.fork_rng(devices=[]),
        torch.no_grad(),
        FlopCounterMode(display=False) as counter,
    ):
        model(x, sigma)
    return float(counter.get_total_flops()) * batch


@contextlib.contextmanager
def using(n: int) -> Iterator[int]:
    """Run the block on ``n`` intra-op threads; the previous count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def prefer_passive_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when it is unset and torch is not loaded yet (the
    OpenMP runtime reads it once, when torch loads it); returns whether it did."""
    if WAIT_ENV in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_ENV] = "PASSIVE"
    return True
