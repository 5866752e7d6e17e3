"""Analytical teleportation (Gaussian score paper, Alg. 1): checked against plain Heun, the
closed-form Gaussian endpoint (Eq. 17) and an independent RK45 integration of the PF-ODE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmdiff.analytic import Gaussian, gaussian_endpoint, integrate_pf_ode
from gmdiff.data import low_rank_gmm
from gmdiff.samplers import heun, heun_nfe, teleport_heun
from gmdiff.samplers.teleport import teleport
from gmdiff.schedules import EDM

F64 = torch.float64
STEPS = 18


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def g() -> Gaussian:
    """A rank-4 Gaussian in D = 10, variances spanning 0.01..9, non-zero mean."""
    gen = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(10, 4, generator=gen, dtype=F64))
    lam = torch.tensor([9.0, 1.0, 0.1, 0.01], dtype=F64)
    return Gaussian(torch.randn(10, generator=gen, dtype=F64), U, lam)


@pytest.fixture(scope="module")
def x_T() -> torch.Tensor:
    return 80.0 * torch.randn(64, 10, generator=torch.Generator().manual_seed(1), dtype=F64)


class Counter:
    """Wraps a denoiser and counts its calls (one call = one NFE for the batch)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.fn(x, sigma)


def test_skip_zero_is_heun_bit_for_bit(g, x_T):
    gmm = low_rank_gmm(10, 3, 2, torch.Generator().manual_seed(2))
    a = heun(gmm.denoiser, EDM(), x_T, STEPS)
    b = teleport_heun(gmm.denoiser, EDM(), x_T, STEPS, gaussian=g, skip=0)
    assert torch.equal(a, b)
    # skip = 0 needs no Gaussian at all
    assert torch.equal(a, teleport_heun(gmm.denoiser, EDM(), x_T, STEPS))


def test_teleport_state_matches_rk45(g, x_T):
    """Alg. 1 line 1 against an independent numerical solution of the PF-ODE."""
    sched = EDM()
    sig = sched.sigma_steps(STEPS)
    levels = [float(sig[i]) for i in (1, 5, 9)]
    ref = integrate_pf_ode(g.score, sched, x_T[:8], 80.0, np.array(levels))
    for k, s in enumerate(levels):
        got = teleport(g, x_T[:8], s, 80.0)
        err = ((got - ref[k]).norm() / ref[k].norm()).item()
        assert err < 1e-7, (s, err)


@pytest.mark.parametrize("skip", [1, 3, 6, 9, 12, 15, 17])
def test_teleport_beats_heun_with_exact_gaussian_model(g, x_T, skip):
    """With the exact Gaussian denoiser as the model, the teleported state at sigma_skip is
    exact while Heun's state there carries the discretisation error of the skipped steps;
    the hybrid's endpoint is then closer to the closed form (Eq. 17) than Heun's."""
    sched = EDM()
    sig = sched.sigma_steps(STEPS)
    exact_skip = teleport(g, x_T, sig[skip], sig[0])
    seen = {}
    heun_out = heun(
        g.denoiser, sched, x_T, STEPS, callback=lambda i, s, x, d: seen.setdefault(i, x)
    )
    heun_state_err = (seen[skip] - exact_skip).norm().item()
    end = gaussian_endpoint(g, x_T, 80.0)
    hybrid = teleport_heun(g.denoiser, sched, x_T, STEPS, gaussian=g, skip=skip)
    err_heun = (heun_out - end).norm().item()
    err_hybrid = (hybrid - end).norm().item()
    assert heun_state_err > 1e-6  # Heun really makes an error in the skipped part
    assert err_hybrid < err_heun, (err_hybrid, err_heun)
    # the hybrid equals Heun restarted from the exact state at sigma_skip
    rest = EDM(sigma_max=float(sig[skip]))
    restarted = heun(g.denoiser, rest, exact_skip, STEPS - skip) if skip < STEPS - 1 else None
    if restarted is not None:
        torch.testing.assert_close(hybrid, restarted, rtol=1e-12, atol=1e-12)


def test_nfe_accounting(g, x_T):
    for skip in range(STEPS):
        m = Counter(g.denoiser)
        teleport_heun(m, EDM(), x_T[:4], STEPS, gaussian=g, skip=skip)
        assert m.calls == heun_nfe(STEPS, skip) == 2 * (STEPS - skip) - 1
    m = Counter(g.denoiser)
    heun(m, EDM(), x_T[:4], STEPS)
    assert m.calls == heun_nfe(STEPS)
    # the paper's NFE columns (Tables 4-6): 18 steps (CIFAR-10), 40 steps (FFHQ, AFHQ)
    assert [heun_nfe(18, s) for s in (0, 1, 5, 7, 10, 12)] == [35, 33, 25, 21, 15, 11]
    assert [heun_nfe(40, s) for s in (0, 6, 10, 14, 20)] == [79, 67, 59, 51, 39]


def test_callback_sees_the_full_schedule_levels(g, x_T):
    sig = EDM().sigma_steps(STEPS)
    for skip in (0, 4, STEPS - 1):
        seen = []
        teleport_heun(
            g.denoiser, EDM(), x_T[:2], STEPS, gaussian=g, skip=skip,
            callback=lambda i, s, x, d, seen=seen: seen.append((i, s)),
        )  # fmt: skip
        assert [i for i, _ in seen] == list(range(skip, STEPS))
        np.testing.assert_allclose([s for _, s in seen], sig[skip:STEPS].numpy(), rtol=1e-12)


def test_images_are_flattened_and_restored(g):
    x = 80.0 * torch.randn(3, 1, 2, 5, generator=torch.Generator().manual_seed(3))
    out = teleport(g, x, 5.0, 80.0)
    assert out.shape == x.shape and out.dtype == x.dtype
    ref = teleport(g, x.flatten(1).double(), 5.0, 80.0)
    torch.testing.assert_close(out.flatten(1).double(), ref, rtol=1e-6, atol=1e-5)


def test_bad_input(g, x_T):
    with pytest.raises(ValueError, match="skip"):
        teleport_heun(g.denoiser, EDM(), x_T, STEPS, gaussian=g, skip=STEPS)
    with pytest.raises(ValueError, match="skip"):
        teleport_heun(g.denoiser, EDM(), x_T, STEPS, gaussian=g, skip=-1)
    with pytest.raises(ValueError, match="gaussian"):
        teleport_heun(g.denoiser, EDM(), x_T, STEPS, skip=2)
    with pytest.raises(ValueError, match="dimension"):
        teleport(g, torch.zeros(2, 7, dtype=F64), 1.0, 80.0)
    with pytest.raises(ValueError, match="steps"):
        heun_nfe(1)


# -- the paper's tables and the experiment function (gmdiff.papers.gs_teleport) ---------------


def test_paper_tables_are_consistent_with_the_sampler():
    """Transcription check: every NFE is Heun's count after skipping, every sigma_skip is
    EDM's level of that index (Eq. 40) to the printed digit, and Table 1 repeats rows of
    Tables 4-6."""
    from gmdiff.papers import gs_teleport as gt

    for name, t in gt.PAPER_TABLES.items():
        sig = EDM().sigma_steps(t["steps"])
        for skip, nfe, s, _ in t["rows"]:
            assert nfe == heun_nfe(t["steps"], skip), (name, skip)
            assert abs(float(sig[skip]) - s) < 0.051, (name, skip)
    alias = {"AFHQ-64": "AFHQv2-64"}
    for ds, _, nfe, s, fid in gt.TABLE_1:
        rows = gt.PAPER_TABLES[alias.get(ds, ds)]["rows"]
        assert any(r[1:] == (nfe, s, fid) for r in rows), (ds, nfe)
    best = {n: gt.best_row(gt.paper_table(n), "FID") for n in gt.PAPER_TABLES}
    assert [int(best[n]["skip"]) for n in ("CIFAR-10", "FFHQ-64", "AFHQv2-64")] == [6, 4, 12]
    assert round(best["CIFAR-10"]["NFE saved (%)"], 1) == 34.3
    assert round(best["CIFAR-10"]["FID change (%)"], 2) == 0.26
    with pytest.raises(ValueError, match="dataset"):
        gt.paper_table("ImageNet")


def test_teleportation_table(g, x_T):
    from gmdiff.papers import gs_teleport as gt

    end = gaussian_endpoint(g, x_T, 80.0)
    err = lambda s: (s - end).norm(dim=1).mean().item()
    tab = gt.teleportation_table(
        g.denoiser, g, x_T, [0, 4, 8], err, steps=STEPS, quality_name="err"
    )
    assert list(tab["NFE"]) == [35, 27, 19]
    np.testing.assert_allclose(tab["NFE saved (%)"], [0.0, 800 / 35, 1600 / 35])
    direct = teleport_heun(g.denoiser, EDM(), x_T, STEPS, gaussian=g, skip=4)
    assert tab["err"].iloc[1] == pytest.approx(err(direct), rel=1e-12)
    assert tab["err change (%)"].iloc[1] == pytest.approx(
        100 * (tab["err"].iloc[1] / tab["err"].iloc[0] - 1)
    )
    assert (tab["err change (%)"].iloc[1:] < 0).all()  # exact model: skipping removes error
    with pytest.raises(ValueError, match="include 0"):
        gt.teleportation_table(g.denoiser, g, x_T, [2, 4], err)
