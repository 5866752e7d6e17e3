"""Wall time per step of repeated work, measured in this process: the one step timer of the
studies' cost tables (:func:`gmdiff.papers.cross_paper.step_cost`,
:func:`gmdiff.papers.smd.step_seconds`).

The candidates are timed round by round, each once per round in turn, so that a change of
the machine's load (the shared 2-core machine) slows them alike; a ratio between two of
them is the median of their per-round ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from gmdiff import threads as _threads

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class StepTime:
    """Seconds per step of one candidate, one value per timed round."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median over rounds (the mean of the middle two for an even count)."""
        return statistics.median(self.seconds)

    def ratio(self, base: StepTime) -> float:
        """The median over rounds of this candidate's time over ``base``'s in the same
        round."""
        return statistics.median(a / b for a, b in zip(self.seconds, base.seconds, strict=True))


def step_times(
    work: Mapping[K, Callable[[], object]],
    steps: int,
    repeats: int,
    warmup: int = 0,
    threads: int | None = 1,
) -> dict[K, StepTime]:
    """Seconds per step of each candidate: ``work[k]()`` runs ``steps`` steps of candidate
    k. Every candidate is called once per round, in the mapping's order: ``warmup`` untimed
    rounds, then ``repeats`` timed ones. On ``threads`` intra-op torch threads (the count
    the harness trains small models with; restored afterwards), or as set when None."""
    if steps < 1 or repeats < 1 or warmup < 0:
        raise ValueError(
            f"need steps >= 1, repeats >= 1 and warmup >= 0, got {steps}, {repeats}, {warmup}"
        )
    times: dict[K, list[float]] = {k: [] for k in work}

    def rounds() -> None:
        for r in range(warmup + repeats):
            for k, fn in work.items():
                start = time.perf_counter()
                fn()
                if r >= warmup:
                    times[k].append((time.perf_counter() - start) / steps)

    if threads is None:
        rounds()
    else:
        with _threads.using(threads):
            rounds()
    return {k: StepTime(tuple(v)) for k, v in times.items()}
