"""``make bench``: gmdiff's speed against diffusers and a bare loop, as ratios measured in
one process (interleaved pairs, median of repeats; see benchmarks/timing.py), written to
``results/bench_<device>.json`` and rendered into book/performance.md.

CPU (every run): training step (forward, backward, AdamW) and one sampling call of our
U-Nets against diffusers' ``UNet2DModel`` of the same layout and parameter count; sampler
overhead per model call against diffusers' schedulers; the Trainer against a bare loop;
image loading with 0 and 2 workers; the toy MLP and digits U-Net training steps at 1, 2 and
``auto`` intra-op threads, quiet and under a synthetic load (benchmarks/threads.py). CUDA
(when present): training images/s, samples/s, peak memory and MFU of the DDPM CIFAR-10
U-Net and NCSN++ at the papers' batch size 128, in fp32, TF32 and bf16, eager and compiled.

Usage: ``python -m benchmarks.run [--size ci|full] [--out results] [--no-gpu]``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from gmdiff import threads

threads.prefer_passive_wait()  # as the gmdiff command does, before torch loads OpenMP

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.threads import bench_threads
from benchmarks.timing import (
    cpu_name,
    cuda_sync,
    interleaved,
    mfu,
    n_params,
    peak_flops,
    step_flops,
)
from benchmarks.twins import TwinCall, diffusers_twin
from gmdiff import samplers
from gmdiff.nets import NCSNpp, UNet, get_config
from gmdiff.schedules import EDM, DiscreteVP

SIZES = {
    # (U-Net configs as (name, ch, batch), repeats, sampler steps, trainer steps, images,
    # repeats of the threads rows' quiet and loaded phases)
    "ci": {"unets": [("digits", None, 64), ("ddpm_cifar10", 32, 8)], "repeats": 9,
           "steps": 20, "trainer_steps": 20, "images": 384, "thread_repeats": 3},
    "full": {"unets": [("digits", None, 128), ("ddpm_cifar10", 32, 32),
                       ("ddpm_cifar10", 64, 16), ("ddpm_cifar10", 128, 8)], "repeats": 9,
             "steps": 50, "trainer_steps": 100, "images": 768, "thread_repeats": 5},
}  # fmt: skip


def _unet_cfg(name: str, ch: int | None):
    cfg = get_config(name)
    return cfg if ch is None else dataclasses.replace(cfg, ch=ch)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, t: torch.Tensor):
    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x, t), x).backward()
        opt.step()

    return step


def bench_unets(size: dict, device: torch.device) -> list[dict]:
    """Ours vs diffusers' twin: a training step and a sampling call, per config."""
    return [
        _unet_pair(name, ch, batch, size["repeats"], device) for name, ch, batch in size["unets"]
    ]


def _unet_pair(name: str, ch: int | None, batch: int, repeats: int, device) -> dict:
    cfg = _unet_cfg(name, ch)
    torch.manual_seed(0)
    ours, theirs = UNet(cfg).to(device), TwinCall(diffusers_twin(cfg)).to(device)
    x = torch.randn(batch, cfg.in_ch, cfg.resolution, cfg.resolution, device=device)
    t = torch.randint(0, 1000, (batch,), device=device).float()
    steps = [
        _train_step(m, torch.optim.AdamW(m.parameters(), lr=1e-4), x, t)
        for m in (ours.train(), theirs.train())
    ]
    train = interleaved(*steps, repeats, sync=cuda_sync)
    ours.eval(), theirs.eval()
    calls = [torch.no_grad()(lambda m=m: m(x, t)) for m in (ours, theirs)]
    sample = interleaved(*calls, repeats, sync=cuda_sync)
    return {
        "net": name if ch is None else f"{name} ch={ch}", "params": n_params(ours),
        "batch": batch, "train_ratio": train["ratio"], "train_ours_s": train["a_s"],
        "train_range": [train["ratio_min"], train["ratio_max"]],
        "sample_ratio": sample["ratio"], "sample_ours_s": sample["a_s"],
        "sample_range": [sample["ratio_min"], sample["ratio_max"]],
    }  # fmt: skip


class Counting:
    """A trivial model (0.5 x) that counts its calls: time spent outside it is overhead."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, *_) -> torch.Tensor:
        self.calls += 1
        return 0.5 * x


def _diffusers_loop(sched, model: Counting, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    sched.set_timesteps(steps)
    x = x_T * sched.init_noise_sigma
    for t in sched.timesteps:
        out = model(sched.scale_model_input(x, t), t)
        x = sched.step(out, t, x).prev_sample
    return x


def bench_samplers(size: dict, device: torch.device) -> list[dict]:
    """Seconds per model call outside the model, ours over diffusers', with a trivial model
    on a (16, 3, 32, 32) batch."""
    import diffusers

    steps = size["steps"]
    x_T = torch.randn(16, 3, 32, 32, device=device)
    vp = DiscreteVP.linear()
    kw = {"num_train_timesteps": 1000, "beta_schedule": "linear"}
    pairs = {
        "Euler": (lambda m: samplers.euler(m, EDM(), x_T, steps),
                  diffusers.EulerDiscreteScheduler(**kw)),
        "Heun": (lambda m: samplers.heun(m, EDM(), x_T, steps),
                 diffusers.HeunDiscreteScheduler(**kw)),
        "DPM-Solver++ 2M": (lambda m: samplers.dpm_solver_pp(m, vp, x_T, steps, order=2),
                            diffusers.DPMSolverMultistepScheduler(**kw, final_sigmas_type="zero")),
        "DDIM": (lambda m: samplers.ddim(m, vp, x_T, steps),
                 diffusers.DDIMScheduler(**kw, timestep_spacing="trailing")),
    }  # fmt: skip
    return [_sampler_pair(name, ours, sched, x_T, steps, size["repeats"])
            for name, (ours, sched) in pairs.items()]  # fmt: skip


def _sampler_pair(name: str, ours, sched, x_T: torch.Tensor, steps: int, repeats: int) -> dict:
    counts = {}

    def run_ours():
        m = Counting()
        ours(m)
        counts["ours"] = m.calls

    def run_theirs():
        m = Counting()
        _diffusers_loop(sched, m, x_T, steps)
        counts["theirs"] = m.calls

    r = interleaved(run_ours, run_theirs, repeats, sync=cuda_sync)
    per_call = (r["a_s"] / counts["ours"], r["b_s"] / counts["theirs"])
    scale = counts["theirs"] / counts["ours"]
    return {
        "sampler": name, "calls_ours": counts["ours"], "calls_theirs": counts["theirs"],
        "ours_us_per_call": 1e6 * per_call[0], "theirs_us_per_call": 1e6 * per_call[1],
        "ratio": r["ratio"] * scale, "range": [r["ratio_min"] * scale, r["ratio_max"] * scale],
    }  # fmt: skip


def bench_trainer(size: dict) -> dict:
    """configs/toy_gmm.yaml's run (MLP 4 x 256, batch 512, EDM loss): the Trainer's step
    against a bare loop doing the same work (draw, loss, AdamW, clip, EMA)."""
    from gmdiff import config as C
    from gmdiff import runs
    from gmdiff.train import Trainer

    root = Path(__file__).resolve().parents[1]
    cfg = C.load_config(root / "configs/toy_gmm.yaml")
    run = runs.build(cfg)
    data, _ = runs.data_of(cfg)
    n = size["trainer_steps"]
    trainer = Trainer(copy.deepcopy(run.trained), run.loss, data, cfg.train)
    trainer.config.log_every = 10**9

    def with_trainer():
        trainer.config.steps = trainer.step + n
        trainer.fit(resume=False)

    model = copy.deepcopy(run.trained)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(0)

    def bare():
        for _ in range(n):
            x = data(cfg.train.batch_size, gen)
            out = run.loss(model, x, generator=gen)
            loss = out["loss"] if isinstance(out, dict) else out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            opt.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1 - cfg.train.ema_decay)

    r = interleaved(with_trainer, bare, size["repeats"])
    return {"config": "configs/toy_gmm.yaml", "steps_per_repeat": n, "ratio": r["ratio"],
            "range": [r["ratio_min"], r["ratio_max"]], "trainer_ms_per_step": 1e3 * r["a_s"] / n,
            "bare_ms_per_step": 1e3 * r["b_s"] / n}  # fmt: skip


def _fake_celeba(folder: Path, n: int) -> None:
    """``n`` random 178 x 218 JPEGs, the size of CelebA's aligned images."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    for i in range(n):
        img = np.roll(base, 7 * i, axis=1)  # smooth-ish content, distinct files
        Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=90)


def bench_loading(size: dict) -> dict:
    """CelebA-64 preprocessing (decode, crop 140, bicubic resize to 64) of batches of 64:
    in the training process against a DataLoader with 2 workers (started afresh each
    repeat, so its start-up counts; a training run pays it once)."""
    from gmdiff.batches import Batches
    from gmdiff.data import load_celeba64
    from gmdiff.distributed import DistInfo

    with tempfile.TemporaryDirectory() as tmp:
        _fake_celeba(Path(tmp), size["images"])
        ds = load_celeba64(tmp)
        batch, k = 64, size["images"] // 64
        b = Batches(ds, batch, DistInfo(), seed=0)

        def in_process():
            for s in range(k):
                b(s, None)

        def loader(n=k):  # a fresh iterator: worker start-up is part of the time
            for _ in b.loader(0, n, workers=2, prefetch=2, pin=False):
                pass

        r = interleaved(in_process, loader, size["repeats"])
        # steady state: 3k batches against k, so the start-up cancels in the difference
        long = interleaved(lambda: loader(3 * k), loader, max(3, size["repeats"] // 2))
        steady = batch * 2 * k / max(long["a_s"] - long["b_s"], 1e-9)
    return {"batch": batch, "batches_per_repeat": k,
            "images_per_s_workers0": batch * k / r["a_s"],
            "images_per_s_workers2": batch * k / r["b_s"], "ratio": r["ratio"],
            "images_per_s_workers2_steady": steady,
            "range": [r["ratio_min"], r["ratio_max"]],
            "ms_per_batch_workers0": 1e3 * r["a_s"] / k}  # fmt: skip


# --------------------------------------------------------------------------------------
# CUDA: throughput, memory, MFU at the papers' batch sizes
# --------------------------------------------------------------------------------------

GPU_NETS = {
    "ddpm_cifar10 U-Net": ("ddpm_cifar10", 1000),
    "NCSN++ (VE)": ("ncsnpp_cifar10_ve", 2000),
}
GPU_BATCH = 128  # Ho et al. 2020 and score_sde's CIFAR-10 batch


def bench_gpu(compile_too: bool = True, repeats: int = 10) -> list[dict]:
    """Per network, precision (fp32, tf32, bf16) and compile: training images/s, sampling
    samples/s (the paper's model calls per sample), peak memory and MFU."""
    rows = []
    for label, (cfg_name, calls) in GPU_NETS.items():
        for precision in ("fp32", "tf32", "bf16"):
            for compiled in (False, True) if compile_too else (False,):
                rows.append(_gpu_case(label, cfg_name, calls, precision, compiled, repeats))
                torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return rows


def _gpu_case(
    label: str, cfg_name: str, calls: int, precision: str, compiled: bool, repeats: int
) -> dict:
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    cfg = get_config(cfg_name)
    torch.manual_seed(0)
    ddpm = cfg_name.startswith("ddpm")
    net = (UNet(cfg) if ddpm else NCSNpp(cfg)).to(dev)
    model = torch.compile(net) if compiled else net
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4, fused=True)
    x = torch.randn(GPU_BATCH, 3, 32, 32, device=dev)
    c = torch.rand(GPU_BATCH, device=dev) * (999 if ddpm else 1)  # DDPM: index; VE: log sigma
    bf16 = precision == "bf16"

    def step():
        with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(model(x, c).float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def call():
        with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
            model(x, c)

    flops = step_flops(lambda: F.mse_loss(net(x, c), x).backward())
    opt.zero_grad(set_to_none=True)
    torch.cuda.reset_peak_memory_stats()
    t_step = _time(step, repeats)
    peak_mem = torch.cuda.max_memory_allocated()
    t_call = _time(call, repeats)
    return {
        "net": label, "params": n_params(net), "precision": precision, "compile": compiled,
        "batch": GPU_BATCH, "train_images_per_s": GPU_BATCH / t_step,
        "samples_per_s": GPU_BATCH / (calls * t_call), "model_calls_per_sample": calls,
        "peak_mem_gib": peak_mem / 2**30, "flops_per_step": flops,
        "mfu": mfu(flops, t_step, peak_flops(torch.cuda.get_device_name(), precision)),
    }  # fmt: skip


def _time(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    cuda_sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        cuda_sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="ci")
    ap.add_argument("--out", default="results")
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--note", default="", help="e.g. 'shared machine'")
    ap.add_argument("--no-threads", action="store_true", help="skip the threads rows")
    args = ap.parse_args(argv)
    size, t0 = SIZES[args.size], time.time()
    cpu = torch.device("cpu")
    out = {
        "size": args.size, "repeats": size["repeats"], "torch": torch.__version__,
        "note": args.note,
        "cpu": {"device": cpu_name(), "threads": torch.get_num_threads(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
    }  # fmt: skip
    out["cpu"]["unets"] = bench_unets(size, cpu)
    out["cpu"]["samplers"] = bench_samplers(size, cpu)
    out["cpu"]["trainer"] = bench_trainer(size)
    out["cpu"]["loading"] = bench_loading(size)
    if not args.no_threads:
        out["cpu"]["thread_rows"] = bench_threads(size["thread_repeats"])
    if torch.cuda.is_available() and not args.no_gpu:
        out["gpu"] = {"device": torch.cuda.get_device_name(),
                      "rows": bench_gpu(not args.no_compile)}  # fmt: skip
    out["wall_s"] = time.time() - t0
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench_{'gpu' if 'gpu' in out else 'cpu'}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({out['wall_s']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
