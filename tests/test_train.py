"""Trainer: exact resume, NaN detection, EMA, warm-up, batch sharding, 2-process DDP."""

import errno
import hashlib
import json
import os
import re
import socket
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import gmdiff.train
from gmdiff import nets
from gmdiff.batches import Batches
from gmdiff.distributed import DistInfo
from gmdiff.ema import ema_decay_at, ema_init_share, ema_update
from gmdiff.global_batch import Dropout
from gmdiff.losses import edm_loss, gm_ddpm_loss
from gmdiff.nets import unwrap
from gmdiff.schedules import DiscreteVP
from gmdiff.storage import atomic_save, load_checkpoint, lock_dir
from gmdiff.train import CHECKPOINT, LOG, TrainConfig, Trainer


class TinyDenoiser(nn.Module):
    """D(x, sigma) = x + MLP([x, log sigma]), with dropout so the global RNG matters (the
    library's per-example dropout, which draws torch's CPU masks: the same weights as
    nn.Dropout in one process)."""

    def __init__(self, dim: int = 2, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, hidden), nn.SiLU(), Dropout(0.1), nn.Linear(hidden, dim)
        )

    def forward(self, x, sigma):
        return x + self.net(torch.cat([x, sigma.log()[:, None]], 1))


def make_model(seed: int = 0) -> TinyDenoiser:
    torch.manual_seed(seed)
    return TinyDenoiser()


DATA = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))


def config(**kw) -> TrainConfig:
    base = {"steps": 20, "batch_size": 32, "lr": 1e-2, "warmup_steps": 3, "ema_decay": 0.9}
    base["log_every"] = 5
    return TrainConfig(**(base | kw))


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class CrashAt:
    """edm_loss that raises on its ``n``-th call, like a killed job."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, model, x0, generator):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("simulated interruption")
        return edm_loss(model, x0, generator=generator)


def log_lines(out) -> list[str]:
    return (out / LOG).read_text().splitlines()


def test_interrupted_then_resumed_run_is_bit_identical(tmp_path):
    """A run killed at step 13 (checkpoint at 10, log at 12, a save's temp file and half a
    log line left behind) resumes to the uninterrupted run's weights and log."""
    full = Trainer(make_model(), edm_loss, DATA, config(log_every=2), tmp_path / "full")
    full.fit()

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        Trainer(make_model(), CrashAt(14), DATA, config(ckpt_every=10, log_every=2), cut).fit()
    assert torch.load(cut / CHECKPOINT, weights_only=True)["step"] == 10
    assert json.loads(log_lines(cut)[-1])["step"] == 12
    (cut / f".{CHECKPOINT}.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    with open(cut / LOG, "a") as f:
        f.write('{"step": 1')
    resumed = Trainer(make_model(seed=1), edm_loss, DATA, config(ckpt_every=10, log_every=2), cut)
    resumed.fit()

    assert resumed.step == full.step == 20
    assert states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), full.ema.state_dict())
    assert not states_equal(full.model.state_dict(), make_model().state_dict())
    m = make_model(seed=2)
    assert load_checkpoint(cut / CHECKPOINT, m) == 20
    assert states_equal(m.state_dict(), full.ema.state_dict())
    assert not list(cut.glob(".*.tmp")), "temp files left behind"
    assert log_lines(cut) == log_lines(tmp_path / "full")  # steps 2, 4, ..., 20 once each


def test_resume_refuses_another_run_with_one_sentence(tmp_path):
    """A checkpoint stores the run's config; resuming with one that changes the run, with
    fewer steps than it holds or with another architecture is refused, naming what differs
    and how to start fresh; more steps, or another log_every, continue it."""
    run = {"model": {"width": 16}, "data": {"name": "normal"}}
    Trainer(make_model(), edm_loss, DATA, config(steps=4), tmp_path, run_config=run).fit()
    ckpt = tmp_path / CHECKPOINT
    fresh = re.escape(f"; to start fresh, use another out_dir or delete {ckpt}") + "$"

    def resume(model=None, run_config=run, **kw):
        model = model or make_model()
        trainer = Trainer(model, edm_loss, DATA, config(**kw), tmp_path, run_config=run_config)
        trainer.fit()
        return trainer

    with pytest.raises(ValueError, match=re.escape(
        f"checkpoint {ckpt} was written by a run with another config (model.width 16 -> 32; "
        "train.batch_size 32 -> 16; checkpoint -> now)") + fresh):  # fmt: skip
        resume(run_config={**run, "model": {"width": 32}}, steps=4, batch_size=16)
    with pytest.raises(ValueError, match=r"\(data.name 'normal' -> \(absent\); train.seed 0 -> 1;"):
        resume(run_config={"model": {"width": 16}}, steps=4, seed=1)
    with pytest.raises(ValueError, match=re.escape(
        f"train.steps = 3 is below step 4 of checkpoint {ckpt}; raise train.steps to "
        "continue that run") + fresh):  # fmt: skip
        resume(steps=3)
    with pytest.raises(ValueError, match=re.escape(
        f"checkpoint {ckpt} holds another architecture: 3 tensors differ in name or shape "
        "(e.g. net.0.bias: (16,) in the checkpoint, (8,) in the model)") + fresh):  # fmt: skip
        resume(TinyDenoiser(hidden=8), steps=4)
    assert resume(steps=6, log_every=1).step == 6
    assert json.loads(log_lines(tmp_path)[-1])["step"] == 6


def test_unreadable_checkpoints_are_named(tmp_path):
    path = tmp_path / CHECKPOINT
    for content in (b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match=f"checkpoint {re.escape(str(path))} is corrupt"):
            Trainer(make_model(), edm_loss, DATA, config(), tmp_path).fit()
    torch.save({"step": 3}, path)
    with pytest.raises(ValueError, match="not a gmdiff training checkpoint: it lacks \\['model'"):
        load_checkpoint(path, make_model())


def test_a_busy_out_dir_is_refused_at_once(tmp_path):
    """flock: while a run holds out_dir (here this process, through another descriptor), a
    second one fails naming the folder and the holder's PID; after it, the folder is free."""
    with lock_dir(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(BlockingIOError, match=re.escape(
            f"out_dir {tmp_path} is in use by another run (PID {os.getpid()}); wait for it "
            "to end or choose another out_dir")):  # fmt: skip
            Trainer(make_model(), edm_loss, DATA, config(steps=2), tmp_path).fit()
        assert not (tmp_path / CHECKPOINT).exists()
    Trainer(make_model(), edm_loss, DATA, config(steps=2), tmp_path).fit()


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    """torch.save reports ENOSPC as a RuntimeError; atomic_save raises an OSError naming
    the checkpoint and leaves no temp file."""

    def to_dev_full(fd, mode):
        os.close(fd)
        return open("/dev/full", mode)

    monkeypatch.setattr(os, "fdopen", to_dev_full)
    path = tmp_path / CHECKPOINT
    with pytest.raises(OSError, match=re.escape(f"No space left on device: '{path}'")) as err:
        atomic_save({"w": torch.zeros(10_000)}, path)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert not list(tmp_path.iterdir())


def test_nan_loss_names_the_step_and_keeps_last_checkpoint(tmp_path):
    calls = []

    def nan_at_7(model, x0, generator):
        calls.append(1)
        out = edm_loss(model, x0, generator=generator)
        return out["loss"] * float("nan") if len(calls) == 8 else out  # 8th call = step 7

    trainer = Trainer(make_model(), nan_at_7, DATA, config(ckpt_every=5), tmp_path)
    with pytest.raises(FloatingPointError, match="step 7"):
        trainer.fit()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_ema_warmup_and_history():
    model = make_model()
    p0 = {k: v.clone() for k, v in model.state_dict().items()}
    t = Trainer(model, edm_loss, DATA, config(steps=1, ema_decay=0.75, log_every=1))
    hist = t.fit()
    p1 = t.model.state_dict()
    for k, v in t.ema.state_dict().items():
        torch.testing.assert_close(v, 0.75 * p0[k] + 0.25 * p1[k])
    assert hist[0]["lr"] == pytest.approx(1e-2 / 3)

    hist = Trainer(make_model(), edm_loss, DATA, config(steps=5, log_every=1)).fit()
    assert [h["lr"] for h in hist] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 1e-2, 1e-2])


def test_batches_epochs_and_sharding():
    data = torch.arange(12)
    single = Batches(data, 4, DistInfo(), seed=3)
    one_epoch = torch.cat([single(k, torch.Generator()) for k in range(3)])
    assert sorted(one_epoch.tolist()) == list(range(12))  # without replacement
    assert not torch.equal(single(3, torch.Generator()), single(0, torch.Generator()))
    shards = [Batches(data, 4, DistInfo(r, 2, r), seed=3) for r in (0, 1)]
    for k in range(5):  # rank slices tile the single-process global batch
        both = torch.cat([s(k, torch.Generator()) for s in shards])
        assert torch.equal(both, single(k, torch.Generator()))

    class ListDataset:  # a map-style dataset returning one example at a time
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return data[i]

    sampler = lambda n, g: torch.randn(n, 2, generator=g)
    whole = Batches(sampler, 4, DistInfo(), seed=3)(0, torch.Generator().manual_seed(1))
    halves = []
    for r in (0, 1):  # each rank draws the global batch's examples and keeps its rows
        shard = Batches(sampler, 4, DistInfo(r, 2, r), seed=3)
        with shard.rows():
            halves.append(shard(0, torch.Generator().manual_seed(1)))
    assert torch.equal(torch.cat(halves), whole)

    as_dataset = Batches(ListDataset(), 4, DistInfo(), seed=3)
    assert torch.equal(as_dataset(5, torch.Generator()), single(5, torch.Generator()))
    with pytest.raises(ValueError, match="divisible"):
        Batches(data, 5, DistInfo(0, 2, 0), seed=0)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(steps=1, batch_size=1, ema_decay=1.0)


#: A tiny SongUNet with every part a DDP step reaches: EDM's augmentation map, attention,
#: dropout, 2 levels.
SONG = nets.SongUNetConfig(
    resolution=8,
    in_ch=1,
    model_channels=8,
    channel_mult=(1, 2),
    num_blocks=1,
    attn_resolutions=(4,),
    dropout=0.1,
)


#: DDP's 2-rank weights against one process's, after DDP_STEPS steps: max |difference| over
#: max |weight|, per tensor. Measured 1e-7 (float32 round-off of the gradient's sum order);
#: per-rank noise gives 1e-2 and more.
DDP_RTOL, DDP_STEPS = 1e-6, 8


def ddp_config(**kw) -> TrainConfig:
    return config(steps=DDP_STEPS, device="cpu", **kw)


def on_two_ranks(worker, *args) -> None:
    """``worker(rank, *args)`` in 2 forked processes, as torchrun's ranks 0 and 1 of a gloo
    job on a free local port (``WORLD_SIZE``, ``RANK``, ... in their environment), each on
    one thread; fork: the children inherit the imported torch (a fresh import costs
    seconds here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_as_rank, args=(port, worker, args), nprocs=2, start_method="fork")


def _as_rank(rank: int, port: int, worker, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        worker(rank, *args)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _ddp_worker(rank: int, out: str) -> None:
    # rank 1 starts from other weights: DDP broadcasts rank 0's
    trainer = Trainer(make_model(seed=rank), edm_loss, DATA, ddp_config(), out)
    assert trainer.info == DistInfo(rank, 2, rank)
    trainer.fit()
    torch.save(trainer.model.state_dict(), f"{out}/rank{rank}.pt")
    # planted: today's per-rank seeding, the rank mixed into every stream's seed
    honest = gmdiff.train.step_seed
    gmdiff.train.step_seed = lambda seed, step, stream: honest(seed, step, f"{stream}/{rank}")
    planted = Trainer(make_model(), edm_loss, DATA, ddp_config())
    planted.fit()
    torch.save(planted.model.state_dict(), f"{out}/planted{rank}.pt")


def relative_error(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max()) for k in a)


def test_two_ddp_ranks_train_what_one_process_trains(tmp_path):
    """2 gloo ranks (each half of the global batch of 32) reach one process's weights up
    to round-off; with the rank in the seeds (the planted per-rank noise) they do not."""
    on_two_ranks(_ddp_worker, str(tmp_path))
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert states_equal(w0, w1)
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ckpt["step"] == DDP_STEPS and states_equal(ckpt["model"], w0)
    torch.set_num_threads(1)
    solo = Trainer(make_model(), edm_loss, DATA, ddp_config())
    solo.fit()
    one = solo.model.state_dict()
    assert not states_equal(one, make_model().state_dict())
    assert relative_error(one, w0) < DDP_RTOL
    planted = torch.load(tmp_path / "planted0.pt", weights_only=True)
    assert relative_error(one, planted) > 100 * DDP_RTOL


#: The library's networks whose losses or parameters DDP once refused, each (network of a
#: seed, loss, data): GM-DDPM's loss reads the network's ``noise`` and ``logits``, which
#: DDP hides; EDM's SongUNet held a parameter no forward reads (the augmentation map, now
#: frozen), with dropout and attention here. Tiny: 2-D points, 8 x 8 one-channel images.
NET_CASES = {
    "gm_ddpm": (
        lambda seed: nets.build_net(
            nets.GMDDPMConfig(
                base=nets.MLPConfig(dim=2, width=16, depth=1, emb_dim=8),
                classifier_width=8,
                time_dim=8,
            ),
            seed,
        ),
        partial(gm_ddpm_loss, schedule=DiscreteVP.linear(T=50)),
        DATA,
    ),
    "song_unet": (
        lambda seed: nets.EDMPrecond(nets.build_net(SONG, seed)),
        edm_loss,
        torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1)),
    ),
}


def _net_worker(rank: int, out: str, case: str) -> None:
    make, loss, data = NET_CASES[case]
    trainer = Trainer(make(rank), loss, data, ddp_config())
    assert unwrap(trainer._net) is trainer.model and trainer._net is not trainer.model
    trainer.fit()
    torch.save(trainer.model.state_dict(), f"{out}/rank{rank}.pt")
    if case != "song_unet":
        return
    # planted: the augmentation map trainable again, as before it was frozen
    model = make(0)
    model.net.map_augment.requires_grad_(True)
    try:
        Trainer(model, loss, data, config(steps=2, device="cpu")).fit()
    except RuntimeError as e:
        (Path(out) / f"planted{rank}.txt").write_text(str(e))


def two_ranks_and_one(tmp_path, case: str) -> tuple[Trainer, dict]:
    """(one process's trainer, the 2 ranks' weights) after DDP_STEPS steps of NET_CASES'
    ``case``, with checks that the ranks agree and that training moved most tensors."""
    on_two_ranks(_net_worker, str(tmp_path), case)
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert states_equal(w0, w1)
    make, loss, data = NET_CASES[case]
    torch.set_num_threads(1)
    solo = Trainer(make(0), loss, data, ddp_config())
    solo.fit()
    one = solo.model.state_dict()
    moved = [k for k, v in make(0).state_dict().items() if not torch.equal(v, one[k])]
    assert len(moved) > len(one) // 2
    return solo, w0


def test_two_ddp_ranks_train_a_gm_ddpm_network_as_one_process(tmp_path):
    """GM-DDPM's loss under DDP (it reads the classifier through the wrapper) trains the
    network and its classifier to one process's weights up to round-off."""
    solo, two = two_ranks_and_one(tmp_path, "gm_ddpm")
    one = solo.model.state_dict()
    assert any(k.startswith("classifier.") for k in one)
    assert relative_error(one, two) < DDP_RTOL


#: A SongUNet's 2-rank weights against one process's, but for its attention key biases
#: (below), after DDP_STEPS steps. Measured 1.4e-5, in single elements whose gradient is
#: near 0 (Adam's step lr g / (|g| + eps) magnifies its round-off); 1e-7 in most tensors.
SONG_RTOL = 1e-4


def without_key_bias(state: dict) -> dict:
    """``state`` with each attention qkv bias cut to its query and value thirds (output
    channel 3 c + j is part j of channel c, as Block.forward reshapes it)."""
    return {
        k: v.reshape(-1, 3)[:, [0, 2]] if k.endswith("qkv.bias") else v for k, v in state.items()
    }


def test_two_ddp_ranks_train_a_song_unet_as_one_process(tmp_path):
    """A SongUNet with EDM's augmentation map trains under 2 gloo ranks to one process's
    weights up to round-off, and to its outputs. What differs: the attention's key bias,
    whose gradient is 0 in exact arithmetic (a softmax over the keys ignores q . b_k, the
    same for every key), so Adam turns its round-off into steps as large as lr, which
    differ between world sizes (as between thread counts); the outputs do not see it. The
    frozen map stays as initialised. Planted: left trainable, DDP refuses the second step
    (the map takes no gradient: no forward reads it)."""
    solo, two = two_ranks_and_one(tmp_path, "song_unet")
    one = solo.model.state_dict()
    assert relative_error(without_key_bias(one), without_key_bias(two)) < SONG_RTOL
    assert relative_error(one, two) > SONG_RTOL  # the key biases: not round-off
    other = NET_CASES["song_unet"][0](0)
    other.load_state_dict(two)
    x = NET_CASES["song_unet"][2][:16]
    sigma = torch.logspace(-2, 1, 16)
    with torch.no_grad():
        assert (
            relative_error({"D": solo.model.eval()(x, sigma)}, {"D": other.eval()(x, sigma)})
            < DDP_RTOL
        )
    augment = "net.map_augment.weight"
    assert (
        torch.equal(one[augment], other.net.map_augment.weight)
        and not other.net.map_augment.weight.requires_grad
    )
    assert torch.equal(one[augment], NET_CASES["song_unet"][0](0).state_dict()[augment])
    for r in (0, 1):
        assert "finished reduction" in (tmp_path / f"planted{r}.txt").read_text()


def test_unwrap_finds_the_network_inside_compile_and_ddp_wrappers():
    """unwrap returns the network inside torch.compile's wrapper (lazy: nothing compiles
    until a call), which passes attribute reads on to what it wraps: in the trainer, DDP's
    wrapper, which hides them (the 2-rank workers above check unwrap on it)."""
    model = NET_CASES["gm_ddpm"][0](0)
    compiled = torch.compile(model)
    assert compiled is not model and unwrap(compiled) is model
    assert unwrap(model) is model and unwrap(edm_loss) is edm_loss


def _per_rank_seed(seed: int, step: int, rank: int, stream: str) -> int:
    """step_seed as it was before DDP sharding, with the rank (verbatim)."""
    digest = hashlib.blake2b(f"{seed}/{step}/{rank}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def test_one_process_draws_what_it_drew_before_ddp_sharding():
    """A single process draws what it drew before the ranks shared their seeds: the
    trainer's weights equal those of the step loop it ran then, written out here (rank 0's
    seeds, the epoch permutation's rows, plain draws, torch's own nn.Dropout)."""
    torch.set_num_threads(1)
    trainer = Trainer(make_model(), edm_loss, DATA, config(steps=3, device="cpu"))
    trainer.fit()
    model = make_model()
    model.net[2] = nn.Dropout(0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0, fused=False)
    g_epoch = torch.Generator().manual_seed(_per_rank_seed(0, 0, 0, "epoch"))
    perm = torch.randperm(len(DATA), generator=g_epoch)
    for k in range(3):
        torch.manual_seed(_per_rank_seed(0, k, 0, "global"))
        g_noise = torch.Generator().manual_seed(_per_rank_seed(0, k, 0, "noise"))
        for group in opt.param_groups:
            group["lr"] = 1e-2 * (k + 1) / 3
        opt.zero_grad()
        edm_loss(model, DATA[perm[32 * k : 32 * (k + 1)]], generator=g_noise)["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert states_equal(trainer.model.state_dict(), model.state_dict())


# --------------------------------------------------------------------------------------
# Performance paths: foreach EMA, worker loader, late config fields
# --------------------------------------------------------------------------------------


def test_foreach_ema_equals_the_per_tensor_lerp():
    """ema_update (one foreach lerp) gives bit-identical results to the per-parameter
    ``lerp_`` loop it replaced, and matches the EMA formula d e + (1 - d) p."""
    from gmdiff.nets import UNet, get_config

    torch.manual_seed(0)
    params = [p.detach() for p in UNet(get_config("digits")).parameters()]
    ema = [p + 0.1 * torch.randn_like(p) for p in params]
    old = [e.clone() for e in ema]
    for e, p in zip(old, params, strict=True):
        e.lerp_(p, 1.0 - 0.999)
    ema_update(ema, params, 0.999)
    assert all(torch.equal(a, b) for a, b in zip(ema, old, strict=True))
    assert len(ema) > 20


def test_foreach_ema_formula_and_a_planted_error():

    e, p = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, -2.0])]
    ema_update(e, p, 0.75)
    torch.testing.assert_close(e[0], 0.75 * torch.tensor([1.0, 2.0]) + 0.25 * p[0])
    wrong = [torch.tensor([1.0, 2.0])]
    ema_update(wrong, p, 0.25)  # a swapped decay must not pass the same check
    assert not torch.allclose(wrong[0], e[0])


def _png_folder(root, n=24, size=10):
    from PIL import Image

    root.mkdir()
    gen = np.random.default_rng(0)
    for i in range(n):
        arr = gen.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"{i:03d}.png")
    return root


class TinyConvDenoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, sigma):
        return x + self.conv(x) * sigma.log()[:, None, None, None]


def test_worker_loader_gives_the_same_batches_and_weights(tmp_path):
    """An image folder read by 2 DataLoader workers yields, step by step, the batches the
    in-process path reads (across an epoch boundary), and training on it gives
    bit-identical weights; a different seed gives other batches (the check can fail)."""
    from gmdiff.data import ImageFolder

    ds = ImageFolder(_png_folder(tmp_path / "img"), resolution=8)
    b = Batches(ds, 10, DistInfo(), seed=3)
    loaded = list(b.loader(0, 6, workers=2, prefetch=2, pin=False))
    assert len(loaded) == 6
    for k, x in enumerate(loaded):
        assert torch.equal(x, b(k, torch.Generator()))
    other = Batches(ds, 10, DistInfo(), seed=4)
    assert not torch.equal(loaded[0], other(0, torch.Generator()))

    weights = []
    for workers in (0, 2):
        torch.manual_seed(0)
        cfg = config(steps=6, batch_size=10, num_workers=workers)
        t = Trainer(TinyConvDenoiser(), edm_loss, ds, cfg)
        assert (t._loader() is None) == (workers == 0)
        t.fit()
        weights.append(t.ema.state_dict())
    assert states_equal(*weights)


def test_late_fields_keep_config_hashes():
    """TrainConfig fields added later (tf32, workers, ...) leave a run's hash unchanged at
    their defaults, so cached runs stay valid, and change it when set; loader workers read
    the same batches and never enter it."""
    from gmdiff import config as C
    from gmdiff.train import LATE_FIELDS

    toy = lambda *sets: C.load_config("configs/toy_gmm.yaml", ["train.ema_rampup=0", *sets])
    base = toy()
    ident = C.identity(base)
    assert not set(LATE_FIELDS) & set(ident["train"])
    assert C.sha(toy("train.tf32=false")) == C.sha(base)
    assert C.sha(toy("train.tf32=true")) != C.sha(base)
    assert C.sha(toy("train.ema_rampup=0.05")) != C.sha(base)
    assert C.sha(toy("train.num_workers=2")) == C.sha(base)


def test_ema_init_share_is_the_product_of_the_decays_the_ema_applied():
    """ema_init_share (the initialisation's weight in the EMA) against the EMA itself: when
    every step sets the raw weights to 0, the EMA of an initial weight w0 is share * w0."""
    cfg = config(steps=7, ema_decay=0.8, warmup_steps=0)
    assert ema_init_share(cfg) == pytest.approx(0.8**7)
    ramp = config(steps=7, ema_decay=0.999, ema_rampup=0.05, warmup_steps=0)
    assert ema_decay_at(ramp, 0) == 0.0  # EDM's ramp: step 0 copies the weights
    assert ema_decay_at(ramp, 10) == pytest.approx(0.5 ** (1 / 0.5))  # half-life 0.05*10
    assert ema_decay_at(ramp, 10**6) == pytest.approx(0.999)  # capped at ema_decay's
    assert ema_init_share(ramp) == 0.0 and ema_init_share(ramp, 0) == 1.0
    for c in (cfg, config(steps=7, ema_decay=0.8, ema_rampup=0.5, warmup_steps=0)):
        model = make_model()
        w0 = [p.detach().clone() for p in model.parameters()]
        t = Trainer(model, edm_loss, DATA, c)

        def zero_step(step, batch=None, t=t, c=c):  # the raw weights are 0 after each step
            with torch.no_grad():
                for p in t.model.parameters():
                    p.zero_()
                ema_update(*t._ema_pairs, ema_decay_at(c, step))
            return torch.zeros(())

        t._train_step = zero_step
        t.fit()
        share = ema_init_share(c)
        for e, p in zip(t.ema.parameters(), w0, strict=True):
            torch.testing.assert_close(e, share * p, rtol=1e-6, atol=1e-7)


def test_ema_rampup_is_a_late_field_and_part_of_the_identity():
    """ema_rampup = 0 leaves old hashes and checkpoints valid; set, it is another run."""
    a = Trainer(make_model(), edm_loss, DATA, config()).identity()
    assert "train.ema_rampup" not in a
    b = Trainer(make_model(), edm_loss, DATA, config(ema_rampup=0.05)).identity()
    assert b["train.ema_rampup"] == 0.05
    with pytest.raises(ValueError, match="ema_rampup"):
        config(ema_rampup=-1.0)
