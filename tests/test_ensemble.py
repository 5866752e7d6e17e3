"""The batched ensemble (gmdiff.ensemble): a member equals its solo Trainer run, a bank that
differs in more than the seed is refused, and the harness loads a member the bank trained."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gmdiff import ensemble, runs, storage, train
from gmdiff.cli import load_config

SMALL = ["model.overrides.width=32", "model.overrides.depth=2", "train.batch_size=64"]
#: configs/smd_toy.yaml's DDPM baseline (gmdiff.papers.smd.config_for(kind="ddpm")): the
#: same MLP without SMD layers, DDPM's eps loss on the cosine schedule with T = 10.
DDPM = ["loss.name=eps", "loss.options={}", "model.net=toy_mlp", *SMALL]
EDM = ["model.overrides.width=32", "model.overrides.depth=2", "train.batch_size=64"]
CASES = {
    "ddpm-eps": ("configs/smd_toy.yaml", [*DDPM, "train.warmup_steps=5"]),
    "edm": ("configs/toy_gmm.yaml", [*EDM, "train.warmup_steps=5"]),
    "edm-tight-clip": ("configs/toy_gmm.yaml", [*EDM, "train.grad_clip=0.01"]),
}
#: float32 agreement asked of a member against its solo run after 20 steps. Measured on this
#: project's CPU (torch 2.14, one thread): 0 for every tensor -- the vmapped Linear's
#: batched matmul computes each member's slice with the same kernel and summation order as
#: the solo mm. The bound allows the round-off of another BLAS, whose batched and plain
#: gemm may sum in another order: ~1e-7 relative per step, compounded over 20 AdamW steps
#: whose update (lr * m / sqrt(v)) is insensitive to it, stays below 1e-5.
RTOL, ATOL = 1e-5, 1e-6


def _bank_cfgs(path: str, extra: list[str], seeds=(0, 1, 2), steps: int = 20):
    base = load_config(path, [*extra, f"train.steps={steps}", "train.log_every=5"])
    return [dataclasses.replace(base, train=dataclasses.replace(base.train, seed=s)) for s in seeds]


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        torch.testing.assert_close(v, b[k], rtol=RTOL, atol=ATOL, msg=k)


@pytest.mark.parametrize("case", sorted(CASES))
def test_members_equal_their_solo_trainer_runs(case):
    """Weights, EMA, AdamW moments and the logged losses of each member equal those of K
    separate Trainer runs of the same configs (to RTOL/ATOL), and the members differ."""
    cfgs = _bank_cfgs(*CASES[case])
    with torch.random.fork_rng(devices=[]):
        bank = ensemble.Bank([runs._trainer(runs.build(c), None) for c in cfgs])
        logs = bank.fit()
    for cfg, member, log in zip(cfgs, bank.trainers, logs, strict=True):
        solo = runs._trainer(runs.build(cfg), None)
        with torch.random.fork_rng(devices=[]):
            solo_log = solo.fit(resume=False)
        _close(member.model.state_dict(), solo.model.state_dict())
        _close(member.ema.state_dict(), solo.ema.state_dict())
        ours, theirs = member.optimizer.state_dict(), solo.optimizer.state_dict()
        assert ours["param_groups"] == theirs["param_groups"]
        for i, st in theirs["state"].items():
            _close(ours["state"][i], st)
        assert [r["step"] for r in log] == [r["step"] for r in solo_log] == [5, 10, 15, 20]
        torch.testing.assert_close(
            torch.tensor([r["loss"] for r in log]), torch.tensor([r["loss"] for r in solo_log])
        )
    w = [t.model.state_dict() for t in bank.trainers]
    out = next(k for k in w[0] if k.endswith("out.weight"))
    assert not torch.allclose(w[0][out], w[1][out])


def test_each_member_is_clipped_by_its_own_norm():
    """Bank._clip scales member k's gradient as clip_grad_norm_ would scale it alone: a
    member with a large gradient is cut to norm grad_clip, one below it is left as it is."""
    path, extra = CASES["edm-tight-clip"]
    cfgs = _bank_cfgs(path, [*extra, "train.grad_clip=1.0"], seeds=(0, 1))
    bank = ensemble.Bank([runs._trainer(runs.build(c), None) for c in cfgs])
    gen = torch.Generator().manual_seed(0)
    for p in bank.params.values():
        p.grad = torch.randn(p.shape, generator=gen) * torch.tensor([10.0, 1e-3]).view(
            -1, *([1] * (p.ndim - 1))
        )
    before = [[p.grad[k].clone() for p in bank.params.values()] for k in range(2)]
    bank._clip()
    for k in range(2):
        expected = [g.clone() for g in before[k]]
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in expected]
        for q, g in zip(params, expected, strict=True):
            q.grad = g
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        for q, p in zip(params, bank.params.values(), strict=True):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=1e-6, atol=1e-9)
        assert (norm > 1.0) == (k == 0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model.overrides.width": 16}, "run 1 of the bank differs from run 0 in more than"),
        ({"train.lr": 1e-4}, "differs from run 0 in more than train.seed"),
        ({"train.seed": 0}, "repeat one"),
    ],
)
def test_a_non_homogeneous_bank_is_refused_before_training(tmp_path, change, match):
    cfgs = _bank_cfgs(*CASES["ddpm-eps"], seeds=(0, 1))
    other = load_config(
        CASES["ddpm-eps"][0],
        [*CASES["ddpm-eps"][1], "train.steps=20", "train.log_every=5", "train.seed=1"]
        + [f"{k}={v}" for k, v in change.items()],
    )
    with pytest.raises(ValueError, match=match):
        ensemble.load_or_train_bank([cfgs[0], other], "bank", cache_dir=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_a_loss_that_draws_inside_the_network_is_refused(tmp_path):
    """SMD's loss draws eta inside its network call, which the bank cannot replay."""
    base = load_config("configs/smd_toy.yaml", ["train.steps=4"])
    cfgs = [
        dataclasses.replace(base, train=dataclasses.replace(base.train, seed=s)) for s in (0, 1)
    ]
    with pytest.raises(ValueError, match="loss.name = 'smd' draws random numbers inside"):
        ensemble.load_or_train_bank(cfgs, "bank", cache_dir=tmp_path)


def test_load_or_train_loads_what_the_bank_trained(tmp_path, monkeypatch):
    """After the bank, runs.load_or_train finds each member's checkpoint and log in its
    run_dir and loads it (no training: mtime unchanged, the solo fit never called); the
    loaded EMA equals the solo harness's run of the same config."""
    cfgs = _bank_cfgs(*CASES["ddpm-eps"], seeds=(3, 4))
    bank = ensemble.load_or_train_bank(cfgs, "bank", cache_dir=tmp_path / "bank")
    folders = [runs.run_dir(c, "bank", tmp_path / "bank") for c in cfgs]
    mtimes = [(f / train.CHECKPOINT).stat().st_mtime_ns for f in folders]
    for f in folders:
        log = [json.loads(line) for line in (f / train.LOG).read_text().splitlines()]
        assert [r["step"] for r in log] == [5, 10, 15, 20]
        assert storage.read_checkpoint(f / train.CHECKPOINT)["step"] == 20

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train retrained a member of the bank")

    monkeypatch.setattr(runs, "_fit", no_training)
    for cfg, member, folder, mtime in zip(cfgs, bank, folders, mtimes, strict=True):
        run, _ = runs.load_or_train(cfg, "bank", cache_dir=tmp_path / "bank")
        _close(run.trained.state_dict(), member.trained.state_dict())
        assert (folder / train.CHECKPOINT).stat().st_mtime_ns == mtime
    monkeypatch.undo()
    solo, _ = runs.load_or_train(cfgs[1], "solo", cache_dir=tmp_path / "solo")
    _close(solo.trained.state_dict(), bank[1].trained.state_dict())


def test_a_member_killed_part_way_resumes_on_the_solo_path(tmp_path, monkeypatch):
    """A bank killed after its step-10 checkpoint leaves each member a checkpoint in the
    Trainer's format (with its own AdamW moments); the next call resumes each on the solo
    path to the weights of the uninterrupted bank."""
    cfgs = _bank_cfgs(*CASES["edm"], seeds=(0, 1), steps=20)
    cfgs = [dataclasses.replace(c, train=dataclasses.replace(c.train, ckpt_every=10)) for c in cfgs]
    whole = ensemble.load_or_train_bank(cfgs, "bank", cache_dir=tmp_path / "a")
    step = ensemble.Bank.train_step

    def killed(self, k):
        if k == 15:
            raise KeyboardInterrupt
        return step(self, k)

    monkeypatch.setattr(ensemble.Bank, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        ensemble.load_or_train_bank(cfgs, "bank", cache_dir=tmp_path / "b")
    assert all(runs._finished_at(runs.run_dir(c, "bank", tmp_path / "b")) == 10 for c in cfgs)
    monkeypatch.undo()
    resumed = ensemble.load_or_train_bank(cfgs, "bank", cache_dir=tmp_path / "b")
    for a, b in zip(whole, resumed, strict=True):
        _close(a.trained.state_dict(), b.trained.state_dict())


def test_the_benchmark_rows():
    """benchmarks/ensemble.py times both sides of the same K runs and reports their ratio."""
    from benchmarks.ensemble import bench_ensemble

    (row,) = bench_ensemble(ks=(2,), steps=2, repeats=1)
    assert row["K"] == 2 and row["steps"] == 2
    assert row["sequential_s"] > 0 and row["bank_s"] > 0
    assert row["ratio"] == pytest.approx(row["sequential_s"] / row["bank_s"])
