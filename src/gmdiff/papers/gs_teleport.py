"""Analytical teleportation (Gaussian score paper, Sec. 6, Alg. 1, App. A.7-A.8, B.8):
the paper's Tables 1, 4, 5 and 6 as data, and the experiment behind the GS-12 chapter.

The paper's rows: unconditional EDM models (VP, config F of Karras et al. 2022) sampled
with EDM's Heun sampler, 18 steps (NFE 35) on CIFAR-10 and 40 steps (NFE 79) on FFHQ-64
and AFHQv2-64; the first ``skip`` Heun steps are replaced by the Gaussian solution at
sigma_skip = sigma_skip-index of EDM's schedule (App. A.7); quality is FID on 50,000
samples from the seeds 0-49999 (App. A.8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gmdiff.analytic import Gaussian, GaussianMixture, integrate_pf_ode
from gmdiff.metrics import paired_bootstrap_ci
from gmdiff.papers import numbers
from gmdiff.samplers import heun_nfe, teleport_heun
from gmdiff.samplers.base import Denoiser
from gmdiff.schedules import EDM

#: Tables 4-6 of the paper (``papers/numbers/gaussian_score.yaml``), per dataset: the rows
#: (skip, NFE, sigma_skip, FID) as tuples, the Heun step count and the table number.
PAPER_TABLES: dict[str, dict] = {
    t["dataset"]: {
        "rows": tuple(map(tuple, t["rows"])),
        "steps": t["steps"],
        "table": t["table"],
    }
    for t in (
        numbers.entry("gaussian_score", name)
        for name in ("table6_cifar10", "table4_ffhq64", "table5_afhqv2_64")
    )
}

#: Table 1 (main text): (dataset, row, NFE, noise sigma_skip, FID); every row is also a row
#: of Tables 4-6.
TABLE_1 = tuple(map(tuple, numbers.entry("gaussian_score", "table1")["rows"]))

#: GS-12's quantitative claim (Sec. 6): 15-30% of NFE saved at < 3% FID increase.
_CLAIM = numbers.facts("gaussian_score", "claims")
CLAIM_NFE_SAVED = _CLAIM["nfe_saved_percent"]
CLAIM_MAX_QUALITY_LOSS = _CLAIM["max_quality_loss_percent"]


def _with_changes(df: pd.DataFrame, quality: str) -> pd.DataFrame:
    """Add 'NFE saved (%)' and '<quality> change (%)' relative to the skip-0 row."""
    base = df.loc[df["skip"] == 0].iloc[0]
    df["NFE saved (%)"] = 100.0 * (1.0 - df["NFE"] / base["NFE"])
    df[f"{quality} change (%)"] = 100.0 * (df[quality] / base[quality] - 1.0)
    return df


def paper_table(dataset: str) -> pd.DataFrame:
    """One of the paper's Tables 4-6 with NFE saved and FID change (%) vs skip 0."""
    if dataset not in PAPER_TABLES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(PAPER_TABLES)}")
    rows = PAPER_TABLES[dataset]["rows"]
    df = pd.DataFrame(rows, columns=["skip", "NFE", "sigma_skip", "FID"])
    return _with_changes(df, "FID")


def teleport_samples(
    denoiser: Denoiser,
    gaussian: Gaussian,
    x_T: Tensor,
    skips: Iterable[int],
    *,
    steps: int = 18,
    schedule: EDM | None = None,
) -> dict[int, Tensor]:
    """Samples of :func:`gmdiff.samplers.teleport_heun` from the same ``x_T`` for every
    ``skip`` (common random numbers, so that differences between skips are not sampling
    noise), under ``torch.no_grad``."""
    schedule = EDM() if schedule is None else schedule
    out = {}
    with torch.no_grad():
        for s in skips:
            out[int(s)] = teleport_heun(
                denoiser, schedule, x_T, steps, gaussian=gaussian, skip=int(s)
            )
    return out


def teleportation_table(
    denoiser: Denoiser,
    gaussian: Gaussian,
    x_T: Tensor,
    skips: Sequence[int],
    quality_fn: Callable[[Tensor], float],
    *,
    steps: int = 18,
    schedule: EDM | None = None,
    samples: dict[int, Tensor] | None = None,
    quality_name: str = "quality",
    n_boot: int = 0,
    generator: torch.Generator | None = None,
) -> pd.DataFrame:
    """GS-12: per ``skip``, sigma_skip, NFE (:func:`gmdiff.samplers.heun_nfe`), NFE saved
    (%), ``quality_fn(samples)`` (lower is better, like FID) and its change (%) vs skip 0.

    ``skips`` must contain 0 (the Heun baseline). ``samples`` may hold precomputed outputs
    of :func:`teleport_samples` for these skips (to plot them too). With ``n_boot`` > 0 the
    columns 'change CI low' / 'change CI high' hold the 95% paired bootstrap interval of
    the change (:func:`gmdiff.metrics.paired_bootstrap_ci`: the same resampled starting
    points x_T for the skip and for skip 0); it measures the sampling noise of the
    comparison, not the spread between trained networks.
    """
    skips = [int(s) for s in skips]
    if 0 not in skips:
        raise ValueError(f"skips must include 0, the plain Heun baseline; got {skips}")
    schedule = EDM() if schedule is None else schedule
    if samples is None:
        samples = teleport_samples(denoiser, gaussian, x_T, skips, steps=steps, schedule=schedule)
    missing = [s for s in skips if s not in samples]
    if missing:
        raise ValueError(f"samples lack the skips {missing}")
    sig = schedule.sigma_steps(steps)
    df = pd.DataFrame(
        {
            "skip": skips,
            "sigma_skip": [float(sig[s]) for s in skips],
            "NFE": [heun_nfe(steps, s) for s in skips],
            quality_name: [float(quality_fn(samples[s])) for s in skips],
        }
    )
    df = _with_changes(df, quality_name)
    if n_boot:

        def changes(idx: Tensor) -> Tensor:
            base = quality_fn(samples[0][idx])
            return torch.tensor([100.0 * (quality_fn(samples[s][idx]) / base - 1.0) for s in skips])

        gen = torch.Generator().manual_seed(0) if generator is None else generator
        df["change CI low"], df["change CI high"] = paired_bootstrap_ci(changes, len(samples[0]), n_boot, gen)
    return df


def below_loss(low: float, high: float, max_loss: float = CLAIM_MAX_QUALITY_LOSS) -> str:
    """GS-12's test on a quality change (%) known to lie in [low, high]: "yes" when all of
    it is below ``max_loss``, "no" when all of it is above, "inconclusive" otherwise."""
    return "yes" if high < max_loss else "no" if low > max_loss else "inconclusive"


def claim_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The two rows of a teleportation table that bracket the top of GS-12's claimed range
    (:data:`CLAIM_NFE_SAVED`, 30%): the largest skip that saves at most 30% of the NFE and
    the next one. Chosen by NFE alone, so the choice does not depend on the noisy quality."""
    saved = table["NFE saved (%)"]
    inside = table.index[saved <= CLAIM_NFE_SAVED[1]][-1]
    return table.loc[[inside, table.index[table.index.get_loc(inside) + 1]]]


def best_row(
    table: pd.DataFrame, quality: str, max_loss: float = CLAIM_MAX_QUALITY_LOSS
) -> pd.Series:
    """The row of a teleportation table (ours or :func:`paper_table`) with the largest
    'NFE saved (%)' among those whose ``quality`` worsens by less than ``max_loss``
    percent (the skip-0 row when no other qualifies)."""
    ok = table[table[f"{quality} change (%)"] < max_loss]
    return ok.loc[ok["NFE saved (%)"].idxmax()]


def exact_pf_ode_samples(
    model: GaussianMixture, x_T: Tensor, schedule: EDM | None = None
) -> Tensor:
    """Reference endpoints of the exact model's PF-ODE from x_T at sigma_max: RK45
    (scipy, rtol 1e-8) down to sigma_min, then D(x, sigma_min), the last step that Heun
    and the hybrid also take (Karras et al. 2022, Alg. 1). Float64."""
    schedule = EDM() if schedule is None else schedule
    x = x_T.double()
    at_min = integrate_pf_ode(
        model.score, schedule, x, schedule.sigma_max, np.array([schedule.sigma_min]),
        rtol=1e-8, atol=1e-10,
    )[0]  # fmt: skip
    return model.denoiser(at_min, schedule.sigma_min)
