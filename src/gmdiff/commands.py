"""What ``gmdiff sample`` and ``gmdiff evaluate`` do (:mod:`gmdiff.cli` parses the command
line and calls these).

``sample`` draws from a run's EMA checkpoint or from a network gmdiff did not train
(``pretrained``: a diffusers folder or an EDM-format state dict, :mod:`gmdiff.loaders`)
and writes ``out_dir/samples.pt`` (the samples and how they were drawn) and, for images,
``out_dir/images/000000.png``... and ``out_dir/grid.png`` (:mod:`gmdiff.images`; the grid
upscaled so that each image is at least 64 pixels), for 2-D data ``out_dir/scatter.png``
(the samples over as many exact draws of the data).

Provenance. ``sample`` builds the model from the config, but first compares the config's
data, model, loss and schedule sections with those the checkpoint stores (its run was
trained with them) and refuses any difference, naming the key and both values. Every
output records where it came from: the checkpoint's path, SHA-256 (first 16 hex digits)
and step (or the ``--pretrained`` path and its hash), the sampler settings (sampler,
steps, n, batch, seed, options) and the run sections: ``samples.pt`` as keys of its
record, each PNG and ``grid.png`` in a ``gmdiff`` text chunk (JSON), ``metrics.json``
under ``provenance``. The outputs of one ``sample`` are written into a hidden folder in
out_dir, committed by one atomic write of ``.sample-commit`` and then renamed into place
(``images/`` as a whole), so a kill leaves the old outputs or, once committed, the new
ones, never a partial folder or a 0-byte PNG: a kill during the renames is completed by
the next ``sample`` or ``evaluate``, which also remove a killed run's leftovers. ``evaluate`` refuses samples drawn from another
checkpoint than the one out_dir (or ``--checkpoint`` / ``--pretrained``) holds now, a
config whose run sections contradict them, non-finite samples, and a result that is not
finite.

``evaluate`` reads ``out_dir/samples.pt`` and reports, per the config's ``evaluate``
section: the data-space distances to the data (sliced Wasserstein-2, RBF MMD^2 and, for a
toy, the exact NLL), or, with ``fid_reference`` set, FID with its protocol
(:mod:`gmdiff.evaluation`); with ``metrics`` listing ``is`` and/or ``kid`` also the
Inception Score and KID through torch-fidelity (:mod:`gmdiff.fidelity`, an optional
extra); with ``likelihood_n`` > 0 also the PF-ODE NLL (bits/dim for images) of that many
data examples under the model (:mod:`gmdiff.likelihood`).

Threads. Both run on the intra-op threads that ``train.threads`` gives
(:func:`command_threads`; "auto": by the size of one model call at ``sample.batch``) and
record the count: ``samples.pt`` under ``threads`` (so also ``metrics.json``'s
provenance), ``metrics.json`` under ``threads``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gmdiff import runs, threads
from gmdiff.config import RUN_SECTIONS, RunConfig, plain
from gmdiff.loaders import Pretrained
from gmdiff.storage import (
    atomic_save,
    atomic_write,
    differences,
    errors_naming,
    flatten,
    load_state,
    lock_dir,
    read_checkpoint,
)

#: What one ``gmdiff sample`` writes into out_dir (replaced together).
SAMPLE_OUTPUTS = ("images", "grid.png", "scatter.png", "samples.pt")


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
        model = loaders.from_config(cfg, pretrained, weights or "as stored")
        model.info = model.info | {
            "pretrained": str(pretrained),
            "pretrained_sha256": digest(pretrained),
        }
        return model
    if weights not in (None, "ema", "raw"):
        raise ValueError(f"weights of a gmdiff checkpoint are 'ema' or 'raw', got {weights!r}")
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "checkpoint.pt"
    state = read_checkpoint(ckpt, "cpu")
    check_run_config(state.get("run"), cfg, f"checkpoint {ckpt} was trained with")
    run = runs.build(cfg)
    ema = weights != "raw"
    hint = "build the model from the config it was trained with"
    load_state(run.trained, state["ema" if ema else "model"], ckpt, hint)
    step = int(state["step"])
    run.denoiser.eval()
    origin = f"gmdiff {cfg.model.net} ({cfg.model.precond} precond), {ckpt} at step {step}"
    return Pretrained(
        run.denoiser,
        run.schedule,
        run.shape,
        origin,
        "ema" if ema else "raw",
        cfg.data.centered,
        {"checkpoint": str(ckpt), "checkpoint_sha256": digest(ckpt), "step": step},
    )


def run_sections(cfg: RunConfig) -> dict[str, Any]:
    """The data, model, loss and schedule sections of ``cfg`` as a flat dict, as a
    checkpoint stores them (``"model.sigma_data"``, ``"data.options.k"``, ...)."""
    return flatten({name: plain(getattr(cfg, name)) for name in RUN_SECTIONS})


def check_run_config(
    stored: dict | None, cfg: RunConfig, source: str, legend: str = "checkpoint"
) -> None:
    """Refuse ``cfg`` when its run sections contradict ``stored`` (flat, as a checkpoint's
    ``run`` entry; its ``train.*`` keys are ignored: they do not change the model),
    naming each key and both values; nothing is checked without ``stored``."""
    if not stored:
        return
    theirs = {k: v for k, v in stored.items() if k.split(".")[0] in RUN_SECTIONS}
    diff = differences(theirs, run_sections(cfg))
    if diff:
        raise ValueError(
            f"{source} another config than this one ({'; '.join(diff)}; {legend} -> config); "
            "sample and evaluate take the model's config from the checkpoint: drop those "
            "--set / config changes, or point out_dir (or --checkpoint) at a run trained "
            "with them"
        )


def digest(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file, or of a folder's files (their
    relative names and contents, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file())
    with errors_naming(path):
        for p in files:
            if p != path:
                h.update(str(p.relative_to(path)).encode() + b"\0")
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()[:16]


def command_threads(
    cfg: RunConfig, model: Pretrained | None, device: torch.device, inception: bool = False
) -> int:
    """The intra-op threads of ``sample`` or ``evaluate`` (:func:`gmdiff.threads.choose`):
    ``train.threads``; for "auto", by the forward FLOPs of one call of ``model`` at
    ``sample.batch`` (capped at the number of examples it is called on); with
    ``inception`` (FID, IS, KID: Inception-v3 on 299 x 299 images, some 6 GFLOP each) as
    a large model; otherwise (evaluate's data-space distances) one thread."""
    cuda = device.type == "cuda"
    if inception:
        return threads.choose(cfg.train.threads, float("inf"), cuda)
    if cfg.train.threads != "auto" or cuda or model is None:
        return threads.choose(cfg.train.threads, 0.0, cuda)
    n = cfg.sample.n if cfg.evaluate.likelihood_n <= 0 else cfg.evaluate.likelihood_n
    batch = max(1, min(cfg.sample.batch, n))
    return threads.choose("auto", threads.forward_flops(model.denoiser, model.shape, batch))


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
    from gmdiff.samplers import SAMPLERS

    s = cfg.sample
    if s.n < 1 or s.batch < 1:
        raise ValueError(f"sample.n and sample.batch must be >= 1, got n={s.n}, batch={s.batch}")
    fn = runs.pick(SAMPLERS, s.sampler, "sample.sampler")
    model = load_model(cfg, checkpoint, pretrained, weights)
    out = Path(cfg.out_dir)
    check_writable(out)
    with lock_dir(out, SAMPLE_LOCK, "a gmdiff sample"):
        remove_staging(out)
        device = _device()
        model.denoiser.to(device)
        schedule = model.schedule_for(s.sampler) if pretrained is not None else model.schedule
        with threads.using(command_threads(cfg, model, device)) as n_threads:
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
        bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
        if bad.any():
            raise FloatingPointError(
                f"the {s.sampler} sampler produced NaN or inf in {int(bad.sum())} of {s.n} "
                f"samples ({model.origin}); nothing was written: check the checkpoint "
                "(train longer or with a lower train.lr) or raise sample.steps"
            )
        record = {"samples": x, **provenance(cfg, model), "threads": n_threads}
        title = f"{s.sampler}, {s.steps} steps, seed {s.seed}"
        write_sample_outputs(out, record, lambda x, path, text: _scatter(cfg, x, path, title, text))
    return x


#: The lock ``gmdiff sample`` holds on out_dir while it writes there (not ``.lock``, which
#: a training run holds: sampling a checkpoint while its run trains on is allowed).
SAMPLE_LOCK = ".sample.lock"


def provenance(cfg: RunConfig, model: Pretrained) -> dict[str, Any]:
    """Where samples come from: the model (checkpoint path, hash and step, or the
    pretrained file and its hash; weights; origin), the sampler settings and, for a
    checkpoint, the run sections of the config (see the module docstring)."""
    s = cfg.sample
    out = {
        "sampler": s.sampler,
        "steps": s.steps,
        "n": s.n,
        "batch": s.batch,
        "seed": s.seed,
        "options": json.loads(json.dumps(plain(s.options), default=str)),
        "weights": model.weights,
        "origin": model.origin,
        "centered": model.centered,
        **model.info,
    }
    if "checkpoint" in model.info:
        out["run_config"] = run_sections(cfg)
    return out


#: The commit record of a ``sample`` (JSON: its staging folder and the outputs it wrote),
#: written atomically once the new outputs are complete; its rename is the one moment
#: that decides between the old outputs and the new (see :func:`finish_sample_outputs`).
SAMPLE_COMMIT = ".sample-commit"


def remove_staging(out: Path) -> None:
    """Make out_dir's sample outputs whole after a killed ``sample``: complete a committed
    move (:func:`finish_sample_outputs`), then delete the staging folders left."""
    finish_sample_outputs(out)
    for p in out.glob(".sample-*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


def write_sample_outputs(
    out: Path, record: dict[str, Any], scatter: Callable[[Tensor, Path, dict], None] | None = None
) -> None:
    """Write ``samples.pt`` and, for 2-D samples, ``scatter(x, path, text)`` as
    ``scatter.png``, for images ``images/`` and ``grid.png`` (every PNG with
    the record's provenance as a ``gmdiff`` text chunk) into a hidden folder of ``out``,
    then commit them (one atomic write of :data:`SAMPLE_COMMIT`) and move them into
    place, the old outputs out of the way first; any old output the new run does not
    write (images of another shape) is removed too. A kill before the commit leaves the
    old outputs; after it, the next ``sample`` or ``evaluate`` completes the move
    (:func:`finish_sample_outputs`)."""
    from gmdiff.images import save_pngs

    x = record["samples"]
    meta = json.dumps({k: v for k, v in record.items() if k != "samples"}, default=str)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".sample-", suffix=".tmp"))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        atomic_save(record, stage / "samples.pt")
        if x.ndim == 4 and x.shape[1] in (1, 3):
            save_pngs(x, stage, record["centered"], text={"gmdiff": meta})
        elif x.ndim == 2 and x.shape[1] == 2 and scatter is not None:
            scatter(x, stage / "scatter.png", {"gmdiff": meta})
        _fsync_dir(stage)
        written = [name for name in SAMPLE_OUTPUTS if (stage / name).exists()]
        commit = json.dumps({"stage": stage.name, "outputs": written})
        atomic_write(out / SAMPLE_COMMIT, commit)  # the commit point
        finish_sample_outputs(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def finish_sample_outputs(out: Path) -> None:
    """Complete the move that :data:`SAMPLE_COMMIT` records, if any (roll forward): each
    output the committed ``sample`` wrote replaces the old one (``samples.pt`` last:
    what ``evaluate`` reads), each other old output moves out; every step can be redone,
    so a kill inside this function is completed by the next call. Then the record goes."""
    commit = out / SAMPLE_COMMIT
    if not commit.is_file() or commit.is_symlink():
        return
    with errors_naming(commit):
        try:
            plan = json.loads(commit.read_text())
            stage, written = out / plan["stage"], list(plan["outputs"])
        except (ValueError, KeyError, TypeError):
            plan = None
    if plan is None or not (stage.name.startswith(".sample-") and stage.parent == out):
        raise ValueError(
            f"{commit}: not a commit record gmdiff wrote; delete it and run `gmdiff sample` again"
        )
    old = stage / "old"
    with errors_naming(out):
        old.mkdir(parents=True, exist_ok=True)
        for name in SAMPLE_OUTPUTS:  # samples.pt last: what evaluate reads
            new = stage / name
            if name in written and not (new.exists() or new.is_symlink()):
                continue  # moved in before a kill
            if (out / name).exists() or (out / name).is_symlink():
                shutil.rmtree(old / name, ignore_errors=True)
                os.rename(out / name, old / name)
            if name in written:
                os.rename(new, out / name)
        _fsync_dir(out)
        commit.unlink()
        _fsync_dir(out)
    shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    from gmdiff.storage import umask

    return umask()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scatter(cfg: RunConfig, x: Tensor, path: Path, title: str, text: dict) -> None:
    """scatter.png of 2-D samples, over as many exact draws of a toy's data (seed 0), with
    the samples' provenance as PNG text chunks ``text``."""
    from gmdiff.plotting import save_scatter

    data, model = runs.data_of(cfg)
    ref = data(x.shape[0], torch.Generator().manual_seed(0)) if model is not None else None
    save_scatter(x, path, ref, title, text)


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
    from gmdiff import fidelity

    e = cfg.evaluate
    extra = fidelity.check_metrics(e.metrics) if e.metrics else []
    inception = network = None
    if extra:  # fail before any work on a missing reference, weights file or library
        fidelity.check_reference(extra, e.fid_reference)
        inception, network = fidelity.load_inception(e.inception_dir or None, _device())
    path = Path(cfg.out_dir) / "samples.pt"
    if (path.parent / SAMPLE_COMMIT).is_file():  # a sample was killed while moving outputs
        with lock_dir(path.parent, SAMPLE_LOCK, "a gmdiff sample"):
            finish_sample_outputs(path.parent)
    if not path.is_file():
        raise FileNotFoundError(f"no samples at {path}; run `gmdiff sample` with this config first")
    check_writable(path.parent)
    record = read_samples(path)
    check_samples_source(record, path, cfg, checkpoint, pretrained)
    x = record["samples"]
    model = load_model(cfg, checkpoint, pretrained, weights) if e.likelihood_n > 0 else None
    inception_used = bool(e.fid_reference or extra)
    n_threads = command_threads(cfg, model, _device(), inception=inception_used)
    with threads.using(n_threads):
        result = _metrics(cfg, x, record, model, extra, inception, network)
    bad = nonfinite(result)
    if bad:
        raise FloatingPointError(
            f"evaluate computed a NaN or infinite {', '.join(bad)} from {path}; nothing was "
            "written: check the samples, the reference statistics and the evaluate section"
        )
    result["threads"] = n_threads
    result["provenance"] = {k: v for k, v in record.items() if k != "samples"}
    atomic_write(Path(cfg.out_dir) / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _metrics(
    cfg: RunConfig,
    x: Tensor,
    record: dict[str, Any],
    model: Pretrained | None,
    extra: list[str],
    inception: Any,
    network: Any,
) -> dict[str, Any]:
    """What :func:`evaluate` reports on the samples ``x`` of ``record``: FID or the
    data-space distances, the ``extra`` torch-fidelity metrics and, with ``model``, the
    likelihood."""
    from gmdiff import evaluation, fidelity

    e = cfg.evaluate
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
    if model is not None:
        result["likelihood"] = likelihood(cfg, model, e.likelihood_n)
    return result


def nonfinite(result: Any, prefix: str = "") -> list[str]:
    """The keys (dotted) of the NaN or infinite numbers in a nested result."""
    if isinstance(result, dict):
        return [k for key, v in result.items() for k in nonfinite(v, f"{prefix}{key}.")]
    if isinstance(result, float) and not math.isfinite(result):
        return [prefix.rstrip(".")]
    return []


def read_samples(path: Path) -> dict[str, Any]:
    """The record ``gmdiff sample`` wrote at ``path``; a damaged or foreign file, or
    samples that are not finite, raise one sentence naming it."""
    again = "run `gmdiff sample` again"
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated: OSError EINVAL with no name; corrupt: RuntimeError
        if isinstance(err, OSError) and err.filename is not None:
            raise
        raise ValueError(f"{path} is truncated or not a torch file; {again}") from err
    x = record.get("samples") if isinstance(record, dict) else None
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 1:
        what = (
            f"a {type(record).__name__}"
            if not isinstance(record, dict)
            else f"keys {sorted(map(str, record))}"
        )
        raise ValueError(
            f"{path} is not a samples file of `gmdiff sample` (a dict with the tensor "
            f"'samples' (N, ...) and its provenance), it holds {what}; {again}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{path}: samples of dtype {x.dtype}, expected floats; {again}")
    bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
    if bad.any():
        raise ValueError(
            f"{path} holds NaN or inf in {int(bad.sum())} of {x.shape[0]} samples; metrics of "
            f"them would be NaN: {again} (from a checkpoint that samples finite values)"
        )
    return record


def check_samples_source(
    record: dict[str, Any],
    path: Path,
    cfg: RunConfig,
    checkpoint: str | Path | None,
    pretrained: str | Path | None,
) -> None:
    """Refuse samples that another model drew than the one evaluate would use now
    (``pretrained``, else ``checkpoint``, else out_dir's checkpoint when there is one), or
    whose run sections the config contradicts; samples without provenance are refused."""
    again = "run `gmdiff sample` again"
    if "checkpoint_sha256" not in record and "pretrained_sha256" not in record:
        raise ValueError(
            f"{path} records no checkpoint or pretrained model (written by an older gmdiff); "
            f"{again} so that its provenance is known"
        )
    check_run_config(
        record.get("run_config"), cfg, f"the samples {path} were drawn with", "samples"
    )
    if pretrained is not None:
        now, kind = digest(pretrained), f"--pretrained {pretrained}"
        drawn = record.get("pretrained_sha256")
    else:
        ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "checkpoint.pt"
        if checkpoint is None and not ckpt.exists():
            return  # nothing here to contradict them
        now, kind = digest(ckpt), f"checkpoint {ckpt}"
        drawn = record.get("checkpoint_sha256")
    if drawn != now:
        src = (
            f"checkpoint {record['checkpoint']} at step {record.get('step')} (sha256 {drawn})"
            if "checkpoint_sha256" in record
            else f"--pretrained {record.get('pretrained')} (sha256 {drawn})"
        )
        raise ValueError(
            f"{path} was drawn from {src}, but {kind} is now another model (sha256 {now}); "
            f"its metrics would not be this model's: {again}"
        )
