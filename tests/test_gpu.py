"""The Trainer's CUDA features, each against its plain fp32 counterpart: bf16 autocast,
torch.compile, fused AdamW, NCCL DDP (one process), channels_last, TF32, cudnn.benchmark
and the worker DataLoader with pinned memory. Every test is marked ``gpu`` and skipped
without CUDA (tests/conftest.py). Tolerances: a feature that changes round-off must keep
the trained weights' change within a stated fraction of the fp32 run's change."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from gmdiff.batches import Batches
from gmdiff.distributed import DistInfo
from gmdiff.losses import edm_loss
from gmdiff.nets import EDMPrecond, build_net, get_config, unwrap
from gmdiff.train import TrainConfig, Trainer

pytestmark = pytest.mark.gpu

DATA = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)


@pytest.fixture(autouse=True)
def restore_cuda_flags():
    """The TF32 and cudnn.benchmark switches set process-wide flags: restore them."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    yield
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = saved


def denoiser() -> nn.Module:
    """The digits U-Net (no dropout), EDM-preconditioned, with fixed initial weights."""
    return EDMPrecond(build_net(get_config("digits", dropout=0.0), seed=0), sigma_data=0.5)


#: AdamW with eps = 1 updates by about lr * m (linear in the gradient, like SGD with
#: momentum) instead of lr * sign(g) for small gradients, so round-off differences in a
#: gradient stay as small in the weights instead of flipping a step's sign.
OPT = {"batch_size": 16, "lr": 1e-2, "adam_eps": 1.0, "ema_decay": 0.5, "device": "cuda"}


def train(data=DATA, steps: int = 5, **kw) -> Trainer:
    t = Trainer(denoiser(), edm_loss, data, TrainConfig(steps=steps, **OPT, **kw))
    t.fit()
    return t


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])


def relative_gap(a: nn.Module, b: nn.Module) -> float:
    """||w_a - w_b|| / ||w_fp32 - w_init||: a feature's deviation relative to the update."""
    w0 = flat(denoiser())
    return float((flat(a) - flat(b)).norm() / (flat(b) - w0).norm())


@pytest.fixture(scope="module")
def fp32() -> Trainer:
    return train()


def test_fp32_training_moves_the_weights(fp32):
    assert (flat(fp32.model) - flat(denoiser())).norm() > 1e-3


def test_bf16_autocast_runs_convs_in_bf16_and_tracks_fp32(fp32):
    model, dtypes = denoiser(), set()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    t = Trainer(model, edm_loss, DATA, TrainConfig(steps=5, bf16=True, **OPT))
    t.fit()
    assert torch.bfloat16 in dtypes
    assert 0 < relative_gap(t.model, fp32.model) < 0.1


def test_compiled_model_equals_eager_and_trains_alike(fp32):
    model = denoiser().cuda().eval()
    x = DATA[:8].cuda()
    sigma = torch.full((8,), 0.7, device="cuda")
    with torch.no_grad():
        # inductor fuses and reorders float32 reductions: agreement to ~1e-5, not bits
        out, ref = torch.compile(model)(x, sigma), model(x, sigma)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(out, 1.01 * ref, rtol=1e-4, atol=1e-4)  # the check can fail
    t = train(compile=True)
    assert isinstance(t._net, torch._dynamo.eval_frame.OptimizedModule)
    assert unwrap(t._net) is t.model
    assert relative_gap(t.model, fp32.model) < 1e-3


def test_fused_adamw_is_used_and_equals_the_loop_version(fp32):
    assert fp32.optimizer.param_groups[0]["fused"] is True
    ws = []
    for fused in (True, False):
        torch.manual_seed(0)
        p = nn.Parameter(torch.randn(1000, device="cuda"))
        opt = torch.optim.AdamW([p], lr=1e-2, fused=fused)
        for _ in range(3):
            p.grad = torch.sin(p.detach() * 3)
            opt.step()
        ws.append(p.detach())
    torch.testing.assert_close(ws[0], ws[1], rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_on_nccl_with_one_process_matches_plain_training(fp32):
    dist.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        t = train()
        assert isinstance(t._net, nn.parallel.DistributedDataParallel)
        assert dist.get_backend() == "nccl"
    finally:
        dist.destroy_process_group()
    assert relative_gap(t.model, fp32.model) < 1e-3


def test_channels_last_weights_and_batches_and_same_training(fp32):
    t = train(channels_last=True)
    conv = next(m for m in t.model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    assert relative_gap(t.model, fp32.model) < 1e-2


def test_tf32_sets_the_flags_rounds_matmuls_and_tracks_fp32(fp32):
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(512, 512, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    exact = a.double() @ a.double()
    err32 = float(((a @ a).double() - exact).abs().max())
    t = train(tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    err_tf32 = float(((a @ a).double() - exact).abs().max())
    assert err_tf32 > 10 * err32  # TF32 keeps 10 mantissa bits: the flag acts
    assert err_tf32 < 1e-2 * float(exact.abs().max())
    assert relative_gap(t.model, fp32.model) < 0.05


def test_cudnn_benchmark_flag(fp32):
    torch.backends.cudnn.benchmark = False
    t = train(cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark
    assert relative_gap(t.model, fp32.model) < 1e-2


def test_loader_workers_pin_memory_and_train_the_same(tmp_path):
    from PIL import Image

    from gmdiff.data import ImageFolder

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(40):
        arr = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / "img" / f"{i:03d}.png")
    ds = ImageFolder(tmp_path / "img", resolution=8)
    batch = next(Batches(ds, 16, DistInfo(), 0).loader(0, 1, workers=2, prefetch=2, pin=True))
    assert batch.is_pinned() and batch.shape == (16, 3, 8, 8)

    def rgb_denoiser():
        net = build_net(get_config("digits", dropout=0.0, in_ch=3), seed=0)
        return EDMPrecond(net, sigma_data=0.5)

    runs = []
    for workers in (0, 2):
        cfg = TrainConfig(steps=4, num_workers=workers, **OPT)
        t = Trainer(rgb_denoiser(), edm_loss, ds, cfg)
        assert (t._loader() is None) == (workers == 0)
        t.fit()
        runs.append(flat(t.model))
    w0 = flat(rgb_denoiser())
    assert float((runs[0] - runs[1]).norm() / (runs[0] - w0).norm()) < 1e-4


def test_vp_preconditioner_runs_without_host_sync_and_matches_cpu():
    """VPPrecond's time lookup checks the noise range on the device (no .item(), no
    Python branch on a device value); its output equals the CPU one to float32 round-off."""
    from gmdiff.nets import VPPrecond
    from gmdiff.schedules import DiscreteVP

    sched = DiscreteVP.linear()
    pre = VPPrecond(build_net(get_config("digits", dropout=0.0), seed=0), sched).eval()
    x, sigma = DATA[:8], sched.sigma_edm(torch.arange(1, 1001, 125)).float()
    with torch.no_grad():
        ref = pre(x, sigma)
        pre.cuda()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = pre(x.cuda(), sigma.cuda())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("net", ["ddpm_cifar10 U-Net", "NCSN++ (VE)"])
def test_gpu_benchmark_row_is_plausible(net):
    """benchmarks/run.py's GPU measurement of one network (fp32, eager, 2 repeats): positive
    throughputs, the published parameter count's order, and an MFU in (0, 1) on a device
    with a known peak."""
    from benchmarks.run import GPU_NETS, _gpu_case

    cfg_name, calls = GPU_NETS[net]
    row = _gpu_case(net, cfg_name, calls, "fp32", False, repeats=2)
    assert row["train_images_per_s"] > 0 and row["samples_per_s"] > 0
    assert row["flops_per_step"] > 1e9 * row["batch"]  # > 1 GFLOP per image and step
    assert 0 < row["peak_mem_gib"] < 80
    if row["mfu"] is not None:
        assert 0 < row["mfu"] < 1
