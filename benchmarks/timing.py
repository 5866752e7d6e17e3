"""Ratios of two timed callables measured in one process as interleaved pairs, so that a
shared machine's load slows both sides alike; and model FLOPs utilisation."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

#: Dense peak throughput (FLOP/s) by device and precision, from the vendors' data sheets
#: (no sparsity): H100/H200 SXM 67 TFLOP/s fp32, 495 tf32, 989 bf16; A100 19.5 / 156 / 312.
PEAK_FLOPS = {
    "H100": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "H200": {"fp32": 66.9e12, "tf32": 494.7e12, "bf16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12},
}


def interleaved(
    a: Callable[[], object],
    b: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> dict:
    """Time ``a`` and ``b`` ``repeats`` times each, alternating which goes first, after
    ``warmup`` untimed calls of each. Returns the median seconds of each, the median of the
    per-pair ratios a/b and their range."""
    for _ in range(warmup):
        a(), b()
    sync()
    ta, tb = [], []
    for r in range(repeats):
        for f in (a, b) if r % 2 == 0 else (b, a):
            t0 = time.perf_counter()
            f()
            sync()
            (ta if f is a else tb).append(time.perf_counter() - t0)
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return {
        "a_s": statistics.median(ta),
        "b_s": statistics.median(tb),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "repeats": repeats,
    }


def step_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` as torch's FlopCounterMode counts them (matmuls and
    convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def peak_flops(device_name: str, precision: str) -> float | None:
    """The dense peak of a known device for ``precision`` (fp32, tf32, bf16), else None."""
    for key, table in PEAK_FLOPS.items():
        if key in device_name:
            return table[precision]
    return None


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s over the device's peak."""
    return None if peak is None else flops_per_step / seconds_per_step / peak


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cuda_sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), for the results files."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
