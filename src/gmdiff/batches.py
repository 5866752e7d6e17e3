"""The training batches: each step's global batch of example indices (without replacement,
epoch by epoch) or fresh draws from a sampler, this DDP rank's rows of it, and the worker
DataLoader that reads the same index lists."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from gmdiff.distributed import DistInfo, step_seed
from gmdiff.global_batch import Rows, local_rows, per_example

Sampler = Callable[[int, torch.Generator], Tensor]
"""``sample(n, generator)`` -> n fresh training examples (toy distributions)."""


class Batches:
    """The local batch of step k: a slice of a global batch drawn without replacement
    epoch by epoch (per-epoch permutations seeded by (seed, epoch)) from a tensor or a
    map-style dataset, or fresh draws from a sampler. Rank r takes rows
    [r b, (r + 1) b) of the global batch, like DistributedSampler."""

    def __init__(self, data: Tensor | Sampler, global_batch: int, info: DistInfo, seed: int):
        if global_batch % info.world_size:
            raise ValueError(
                f"train.batch_size = {global_batch} (the global batch) is not divisible by "
                f"the {info.world_size} DDP processes, so they cannot take equal slices of it; "
                "choose a multiple of the number of processes"
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
            g = torch.Generator().manual_seed(step_seed(self.seed, epoch, "epoch"))
            self._perms = {epoch: torch.randperm(len(self.data), generator=g)}
        return self._perms[epoch]

    def indices(self, step: int) -> Tensor:
        """The dataset rows of this rank's batch at ``step`` (finite data only)."""
        N = len(self.data)
        start = step * self.G + self.info.rank * self.b
        pos = torch.arange(start, start + self.b)
        return torch.cat(
            [self._perm(int(e))[pos[pos // N == e] % N] for e in torch.unique(pos // N)]
        )

    def rows(self) -> contextlib.AbstractContextManager[Rows]:
        """This rank's rows of the global batch, for the per-example draws of a step
        (:func:`gmdiff.global_batch.local_rows`)."""
        return local_rows(self.info.rank * self.b, self.b, self.G)

    def __call__(self, step: int, generator: torch.Generator) -> Tensor:
        """This rank's rows of step ``step``'s global batch; fresh draws from a sampler
        are made for the whole global batch and sliced (inside :meth:`rows`)."""
        if not self.finite:
            return per_example(lambda n: self.data(n, generator), self.b)
        idx = self.indices(step)
        if isinstance(self.data, Tensor):
            return self.data[idx]
        return torch.stack([self.data[int(i)] for i in idx])

    def loader(
        self, start: int, stop: int, workers: int, prefetch: int, pin: bool
    ) -> Iterator[Tensor]:
        """The batches of steps start..stop-1 from a DataLoader with ``workers`` processes
        (same index lists as :meth:`indices`, stacked by the default collate)."""
        sampler = StepIndices(self, start, stop)
        return iter(
            torch.utils.data.DataLoader(
                self.data,
                batch_sampler=sampler,
                num_workers=workers,
                prefetch_factor=prefetch,
                pin_memory=pin,
            )
        )


class StepIndices(torch.utils.data.Sampler):
    """The index lists of steps start..stop-1, drawn lazily (a batch sampler)."""

    def __init__(self, batches: Batches, start: int, stop: int) -> None:
        self.batches, self.start, self.stop = batches, start, stop

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.stop):
            yield self.batches.indices(k).tolist()

    def __len__(self) -> int:
        return self.stop - self.start
