"""Random draws that depend on the global batch, not on how it is split over DDP ranks.

Under DDP every rank trains on its own rows of the global batch (rank r holds rows
[r b, (r + 1) b) of a global batch of G = world_size b rows). For the averaged gradient to
equal a one-process run's, every per-example draw of the loss (a noise level, the noise, a
mixture component, a latent, a flip, a dropout mask) must be the one the one-process run
draws for that example. :class:`gmdiff.train.Trainer` therefore seeds its generators
without the rank and announces the rank's rows with :func:`local_rows`; each draw site
draws the whole global batch's values (G rows, the call a one-process run makes) and keeps
its own rows (:func:`per_example`). With one process the rows are the whole batch and every
site makes exactly the call it made before, so single-process runs draw what they drew.
The cost is drawing G rows instead of b, negligible next to the network.

Outside a trainer (sampling, evaluation, tests) no rows are set and the draws are the
plain calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Rows:
    """This rank's rows [start, start + size) of a global batch of ``total`` rows."""

    start: int
    size: int
    total: int

    def __post_init__(self) -> None:
        if not (0 <= self.start and 1 <= self.size and self.start + self.size <= self.total):
            raise ValueError(
                f"rows [{self.start}, {self.start + self.size}) do not lie in a global batch "
                f"of {self.total}"
            )

    @property
    def sharded(self) -> bool:
        """Whether the rank holds only part of the global batch (world size > 1)."""
        return self.size != self.total


_ROWS: ContextVar[Rows | None] = ContextVar("gmdiff_local_rows", default=None)


@contextlib.contextmanager
def local_rows(start: int, size: int, total: int) -> Iterator[Rows]:
    """Within the block, per-example draws (:func:`per_example`) are those of a global
    batch of ``total`` rows of which this process holds [start, start + size)."""
    token = _ROWS.set(Rows(start, size, total))
    try:
        yield _ROWS.get()
    finally:
        _ROWS.reset(token)


def current_rows() -> Rows | None:
    """The rows :func:`local_rows` set, or None outside a trainer's step."""
    return _ROWS.get()


def global_count(n: int) -> int:
    """How many rows a per-example draw of this process's ``n`` rows draws: n, or, under a
    sharded :func:`local_rows` with n = m * size (m draws per example, block-major: row
    k size + i is draw k of example i, the layout of ``Tensor.repeat``), m * total."""
    rows = _ROWS.get()
    if rows is None or not rows.sharded:
        return n
    if n % rows.size:
        raise RuntimeError(
            f"a per-example draw of {n} rows under DDP rows of {rows.size} examples: the "
            "rows must be a whole number of draws per example"
        )
    return n // rows.size * rows.total


def local(draws: Tensor) -> Tensor:
    """This process's rows of a global per-example draw (:func:`global_count` rows along
    dim 0); the draw itself when no sharded rows are set."""
    rows = _ROWS.get()
    if rows is None or not rows.sharded:
        return draws
    m = draws.shape[0] // rows.total
    blocks = draws.reshape(m, rows.total, *draws.shape[1:])
    return blocks[:, rows.start : rows.start + rows.size].reshape(m * rows.size, *draws.shape[1:])


def per_example(draw: Callable[[int], Tensor], n: int) -> Tensor:
    """``draw(n)``, a draw with one row (dim 0) per example, made world-size independent:
    under sharded rows it draws the global batch's rows, ``draw(global_count(n))``, and
    keeps this process's (:func:`local`)."""
    return local(draw(global_count(n)))


def dropout(x: Tensor, p: float, training: bool, inplace: bool = False) -> Tensor:
    """``F.dropout`` whose mask rows are those of the global batch inside a trainer's step
    (:func:`local_rows`): the mask is torch's CPU dropout, a Bernoulli(1 - p) draw of
    ``x``'s shape from the global generator divided by 1 - p, drawn for all ``total`` rows
    and sliced (:func:`per_example`). Outside a step, and where no draw is needed (p = 0
    or 1, eval mode), it is ``F.dropout`` itself. On CPU the
    two give the same masks; on CUDA ``F.dropout``'s fused kernel draws other ones, so a
    CUDA run's masks differ from before this class existed (not between world sizes)."""
    if _ROWS.get() is None or not training or p in (0.0, 1.0) or x.numel() == 0:
        return F.dropout(x, p, training, inplace)
    keep = 1.0 - p

    def mask(n: int) -> Tensor:
        noise = torch.empty((n, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return noise.bernoulli_(keep).div_(keep)

    return x.mul_(per_example(mask, x.shape[0])) if inplace else x * per_example(mask, x.shape[0])


class Dropout(nn.Dropout):
    """``nn.Dropout`` with world-size-independent masks (:func:`dropout`); the same
    parameters, state dict and repr."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.inplace)
