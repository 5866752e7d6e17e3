"""What ``gmdiff sample`` and ``gmdiff evaluate`` do (:mod:`gmdiff.cli` parses the command
line and calls these).

``sample`` draws from a run's EMA checkpoint or from a network gmdiff did not train
(``pretrained``: a diffusers folder or an EDM-format state dict, :mod:`gmdiff.loaders`)
and writes ``out_dir/samples.pt`` (the samples and how they were drawn) and, for images,
``out_dir/images/000000.png``... and ``out_dir/grid.png`` (:mod:`gmdiff.images`; the grid
upscaled so that each image is at least 64 pixels), for 2-D data ``out_dir/scatter.png``
(the samples over as many exact draws of the data).

``evaluate`` reads ``out_dir/samples.pt`` and reports, per the config's ``evaluate``
section: the data-space distances to the data (sliced Wasserstein-2, RBF MMD^2 and, for a
toy, the exact NLL), or, with ``fid_reference`` set, FID with its protocol
(:mod:`gmdiff.evaluation`); with ``metrics`` listing ``is`` and/or ``kid`` also the
Inception Score and KID through torch-fidelity (:mod:`gmdiff.fidelity`, an optional
extra); with ``likelihood_n`` > 0 also the PF-ODE NLL (bits/dim for images) of that many
data examples under the model (:mod:`gmdiff.likelihood`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gmdiff import runs
from gmdiff.config import RunConfig
from gmdiff.loaders import Pretrained
from gmdiff.train import atomic_save, atomic_write, errors_naming, load_checkpoint


def check_writable(folder: Path) -> None:
    """Fail now, naming ``folder``, when results cannot be written there (not after the
    work that makes them)."""
    with errors_naming(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(
    cfg: RunConfig,
    checkpoint: str | Path | None = None,
    pretrained: str | Path | None = None,
    weights: str | None = None,
) -> Pretrained:
    """The model to sample or evaluate: ``pretrained`` (:func:`gmdiff.loaders.from_config`)
    or the run's checkpoint (default out_dir/checkpoint.pt), EMA weights unless
    ``weights`` = "raw"."""
    from gmdiff import loaders

    if pretrained is not None:
        if checkpoint is not None:
            raise ValueError("pass either --checkpoint or --pretrained, not both")
        return loaders.from_config(cfg, pretrained, weights or "as stored")
    if weights not in (None, "ema", "raw"):
        raise ValueError(f"weights of a gmdiff checkpoint are 'ema' or 'raw', got {weights!r}")
    run = runs.build(cfg)
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "checkpoint.pt"
    ema = weights != "raw"
    step = load_checkpoint(ckpt, run.trained, ema=ema, map_location="cpu")
    run.denoiser.eval()
    origin = f"gmdiff {cfg.model.net} ({cfg.model.precond} precond), {ckpt} at step {step}"
    return Pretrained(
        run.denoiser,
        run.schedule,
        run.shape,
        origin,
        "ema" if ema else "raw",
        cfg.data.centered,
        {"step": step},
    )


def _sampler_options(cfg: RunConfig, options: dict) -> dict:
    """The sampler options, ``gaussian: data`` (teleportation, Gaussian score paper Alg. 1)
    replaced by the Gaussian fitted to the config's data (flattened, float64)."""
    if options.get("gaussian") != "data":
        return options
    from gmdiff.analytic import Gaussian

    data, model = runs.data_of(cfg)
    x = data(10_000, torch.Generator().manual_seed(0)) if model is not None else data
    if not isinstance(x, Tensor):
        raise ValueError(  # noqa: TRY004 -- bad input is a ValueError here
            "gaussian: data needs a dataset held in memory (a tensor)"
        )
    return options | {"gaussian": Gaussian.from_data(x.flatten(1).double())}


def sample(
    cfg: RunConfig,
    checkpoint: str | Path | None = None,
    pretrained: str | Path | None = None,
    weights: str | None = None,
) -> Tensor:
    """Draw ``sample.n`` samples (see the module docstring); returns them."""
    from gmdiff.images import save_pngs
    from gmdiff.samplers import SAMPLERS

    s = cfg.sample
    if s.n < 1 or s.batch < 1:
        raise ValueError(f"sample.n and sample.batch must be >= 1, got n={s.n}, batch={s.batch}")
    fn = runs.pick(SAMPLERS, s.sampler, "sample.sampler")
    model = load_model(cfg, checkpoint, pretrained, weights)
    out = Path(cfg.out_dir)
    check_writable(out)
    device = _device()
    model.denoiser.to(device)
    schedule = model.schedule_for(s.sampler) if pretrained is not None else model.schedule
    x = runs.draw_samples(
        model.denoiser,
        schedule,
        fn,
        s.steps,
        model.shape,
        s.n,
        seed=s.seed,
        batch=s.batch,
        device=device,
        **_sampler_options(cfg, s.options),
    )
    record = {
        "samples": x,
        "sampler": s.sampler,
        "steps": s.steps,
        "options": s.options,
        "seed": s.seed,
        "weights": model.weights,
        "origin": model.origin,
        "centered": model.centered,
        **model.info,
    }
    atomic_save(record, out / "samples.pt")
    if x.ndim == 4 and x.shape[1] in (1, 3):
        save_pngs(x, out, model.centered)
    elif x.ndim == 2 and x.shape[1] == 2:
        _scatter(cfg, x, out / "scatter.png", f"{s.sampler}, {s.steps} steps, seed {s.seed}")
    return x


def _scatter(cfg: RunConfig, x: Tensor, path: Path, title: str) -> None:
    """scatter.png of 2-D samples, over as many exact draws of a toy's data (seed 0)."""
    from gmdiff.plotting import save_scatter

    data, model = runs.data_of(cfg)
    ref = data(x.shape[0], torch.Generator().manual_seed(0)) if model is not None else None
    save_scatter(x, path, ref, title)


def _reference(cfg: RunConfig, n: int, gen: torch.Generator) -> tuple[Tensor, object]:
    """n data examples to compare samples with (fresh draws for a toy, a random subset of
    the dataset otherwise, with the training centring) and the toy's analytic model."""
    data, model = runs.data_of(cfg)
    if model is not None:
        return data(n, gen), model
    idx = torch.randperm(len(data), generator=gen)[:n]
    x = data[idx] if isinstance(data, Tensor) else torch.stack([data[int(i)] for i in idx])
    return (x if cfg.data.centered else (x + 1) / 2), None


def _data_metrics(cfg: RunConfig, x: Tensor) -> dict[str, Any]:
    """Sliced Wasserstein-2 and RBF MMD^2 (bandwidth: median pairwise distance of the data)
    on flattened examples; for toy data also the mean NLL of the samples under the true
    density next to that of true samples."""
    from gmdiff import metrics

    x = x.double().flatten(1)
    gen = torch.Generator().manual_seed(cfg.evaluate.seed)
    ref, model = _reference(cfg, x.shape[0], gen)
    ref = ref.double().flatten(1)
    if ref.shape != x.shape:
        raise ValueError(
            f"samples {tuple(x.shape)} and data {tuple(ref.shape)} differ in shape: the "
            "dataset has fewer examples than sample.n; lower sample.n"
        )
    bandwidth = torch.cdist(ref, ref).median().item()
    result = {
        "n": x.shape[0],
        "sliced_wasserstein_2": metrics.sliced_wasserstein(x, ref, cfg.evaluate.n_projections, gen),
        "mmd2_rbf": metrics.mmd_rbf(x, ref, bandwidth),
        "mmd_bandwidth": bandwidth,
    }
    if model is not None:
        result["nll_samples"] = metrics.mean_nll(x, model)
        result["nll_data"] = metrics.mean_nll(ref, model)
    return result


def likelihood(cfg: RunConfig, model: Pretrained, n: int) -> dict[str, Any]:
    """PF-ODE NLL of ``n`` data examples (drawn with ``evaluate.seed``) under ``model``:
    for images bits/dim (``evaluate.dequantize``: uniform dequantisation,
    :mod:`gmdiff.likelihood`; ``sample.batch`` images per ODE solve), for a toy the NLL in
    nats next to the exact one."""
    from gmdiff import likelihood as L

    e = cfg.evaluate
    gen = torch.Generator().manual_seed(e.seed)
    data, exact_model = _reference(cfg, n, gen)
    schedule = model.schedule_for("heun")  # a DiscreteVP network: EDM over its noise range
    device = _device()
    den = model.denoiser.to(device)
    x = data.to(device=device, dtype=torch.float64 if exact_model is not None else torch.float32)
    opts = {"divergence": e.divergence, "generator": gen}
    if x.ndim == 4:
        bpd, res = L.image_bpd(
            den,
            schedule,
            x,
            dequantize_data=e.dequantize,
            centered=model.centered,
            batch=cfg.sample.batch,
            **opts,
        )
        mean, se = bpd.mean().item(), (bpd.std() / bpd.numel() ** 0.5).item()
        out = {"bpd": mean, "bpd_stderr": se, "dequantized": e.dequantize}
    else:
        res = L.pf_ode_nll(den, schedule, x, **opts)
        mean, se = res.mean_and_stderr()
        out = {"nll": mean, "nll_stderr": se}
        if exact_model is not None:
            exact = -L.marginal_log_prob(exact_model, schedule, x.cpu(), schedule.t_min)
            out["nll_exact"] = exact.mean().item()
    return out | {
        "likelihood_n": n,
        "divergence": res.divergence,
        "nfe": res.nfe,
        "t_min": schedule.t_min,
    }


def evaluate(
    cfg: RunConfig,
    checkpoint: str | Path | None = None,
    pretrained: str | Path | None = None,
    weights: str | None = None,
) -> dict[str, Any]:
    """Evaluate out_dir/samples.pt (module docstring); writes out_dir/metrics.json."""
    from gmdiff import evaluation, fidelity

    path = Path(cfg.out_dir) / "samples.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no samples at {path}; run `gmdiff sample` with this config first")
    check_writable(path.parent)
    record = torch.load(path, weights_only=True)
    x, e = record["samples"], cfg.evaluate
    extra = fidelity.check_metrics(e.metrics) if e.metrics else []
    if extra:  # fail before any work on a missing reference, weights file or library
        fidelity.check_reference(extra, e.fid_reference)
        inception, network = fidelity.load_inception(e.inception_dir or None, _device())
    how = {
        "centered": record.get("centered", cfg.data.centered),
        "device": _device(),
        "weights": record.get("weights", "ema"),
        "seed": record.get("seed"),
        "model": record.get("origin", ""),
        "sampler": f"{record.get('sampler')}, {record.get('steps')} steps",
    }
    if e.fid_reference:
        result = evaluation.fid_report(
            x.float(),
            e.fid_reference,
            mode=e.fid_mode,
            weights_dir=e.inception_dir or None,
            **how,
        )
    else:
        result = _data_metrics(cfg, x)
    if extra:
        result |= fidelity.report(
            x, extra, e.fid_reference, extractor=inception, network=network, **how
        )
    if e.likelihood_n > 0:
        model = load_model(cfg, checkpoint, pretrained, weights)
        result["likelihood"] = likelihood(cfg, model, e.likelihood_n)
    atomic_write(Path(cfg.out_dir) / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
