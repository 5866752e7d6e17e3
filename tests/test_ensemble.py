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


def _through_the_harness(cfgs, name, cache_dir):
    return runs.load_or_train_many([(c, name) for c in cfgs], cache_dir=cache_dir, workers=1)


@pytest.mark.parametrize("entry", [ensemble.load_or_train_bank, _through_the_harness])
def test_a_member_killed_part_way_resumes_on_the_solo_path(tmp_path, monkeypatch, entry):
    """A bank killed after its step-10 checkpoint (trained by load_or_train_bank, or
    chosen by load_or_train_many) leaves each member a checkpoint in the Trainer's format
    (with its own AdamW moments); the next call resumes each on the solo path to the
    weights of the uninterrupted bank."""
    cfgs = _bank_cfgs(*CASES["edm"], seeds=(0, 1), steps=20)
    cfgs = [dataclasses.replace(c, train=dataclasses.replace(c.train, ckpt_every=10)) for c in cfgs]
    whole = entry(cfgs, "bank", cache_dir=tmp_path / "a")
    step = ensemble.Bank.train_step

    def killed(self, k):
        if k == 15:
            raise KeyboardInterrupt
        return step(self, k)

    monkeypatch.setattr(ensemble.Bank, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        entry(cfgs, "bank", cache_dir=tmp_path / "b")
    assert all(runs._finished_at(runs.run_dir(c, "bank", tmp_path / "b")) == 10 for c in cfgs)
    monkeypatch.undo()
    resumed = entry(cfgs, "bank", cache_dir=tmp_path / "b")
    for a, b in zip(whole, resumed, strict=True):
        _close(a.trained.state_dict(), b.trained.state_dict())


def test_the_benchmark_rows():
    """benchmarks/ensemble.py times both sides of the same K runs and reports their ratio."""
    from benchmarks.ensemble import bench_ensemble

    (row,) = bench_ensemble(ks=(2,), steps=2, repeats=1)
    assert row["K"] == 2 and row["steps"] == 2
    assert row["sequential_s"] > 0 and row["bank_s"] > 0
    assert row["ratio"] == pytest.approx(row["sequential_s"] / row["bank_s"])


def _count_banks(monkeypatch) -> list[list[int]]:
    """The seeds of every Bank built from now on (the batched path taken)."""
    built: list[list[int]] = []
    init = ensemble.Bank.__init__

    def spy(self, trainers):
        built.append([t.config.seed for t in trainers])
        init(self, trainers)

    monkeypatch.setattr(ensemble.Bank, "__init__", spy)
    return built


def test_load_or_train_many_trains_a_seed_bank_batched(tmp_path, monkeypatch):
    """load_or_train_many chooses the path, not the caller: the three seeds of one config
    train as one Bank, the SMD run beside them (a loss the bank cannot replay) alone; each
    member has its own cache folder whose checkpoint and log load_or_train reads, with
    Run.adequacy from its own log, and equals its solo run (RTOL/ATOL); with
    $GMDIFF_BANK=serial no Bank is built."""
    cfgs = _bank_cfgs(*CASES["ddpm-eps"], seeds=(0, 1, 2))
    smd = load_config("configs/smd_toy.yaml", ["train.steps=20", "train.log_every=5"])
    jobs = [(c, "bank") for c in cfgs] + [(smd, "bank")]
    built = _count_banks(monkeypatch)
    got = runs.load_or_train_many(jobs, cache_dir=tmp_path / "many", workers=1)
    assert built == [[0, 1, 2]]
    for cfg, run in zip(cfgs, got, strict=False):
        folder = runs.run_dir(cfg, "bank", tmp_path / "many")
        assert run.cfg.out_dir == str(folder) and runs._finished_at(folder) == 20
        log = [json.loads(line) for line in (folder / train.LOG).read_text().splitlines()]
        assert run.adequacy()["final_loss"] == log[-1]["loss"]
        solo, _ = runs.load_or_train(cfg, "bank", cache_dir=tmp_path / "solo")
        _close(run.trained.state_dict(), solo.trained.state_dict())
        solo_log = (runs.run_dir(cfg, "bank", tmp_path / "solo") / train.LOG).read_text()
        torch.testing.assert_close(
            torch.tensor([r["loss"] for r in log]),
            torch.tensor([json.loads(line)["loss"] for line in solo_log.splitlines()]),
        )
    monkeypatch.setenv(runs.BANK_ENV, "serial")
    runs.load_or_train_many(jobs[:3], cache_dir=tmp_path / "serial", workers=1)
    assert built == [[0, 1, 2]]
    monkeypatch.setenv(runs.BANK_ENV, "fast")
    with pytest.raises(ValueError, match="GMDIFF_BANK must be 'batched' or 'serial'"):
        runs.load_or_train_many(jobs[:3], cache_dir=tmp_path / "other", workers=1)


def test_a_members_seed_alone_determines_it(tmp_path):
    """Seed 4 trained in the bank (3, 4) in this process and in the bank (4, 6) of a
    worker process (load_or_train_many of seeds 5, 4, 6 with workers=2: the bank halved
    into [5] and [4, 6]) gives the same weights: its batches and noise come from its own
    generators, whatever its bank mates."""
    a = runs.load_or_train_many(
        [(c, "bank") for c in _bank_cfgs(*CASES["edm"], seeds=(3, 4))],
        cache_dir=tmp_path / "a",
        workers=1,
    )
    b = runs.load_or_train_many(
        [(c, "bank") for c in _bank_cfgs(*CASES["edm"], seeds=(5, 4, 6))],
        cache_dir=tmp_path / "b",
        workers=2,
    )
    _close(a[1].trained.state_dict(), b[1].trained.state_dict())
    w = [r.trained.state_dict() for r in (a[0], b[1])]
    assert any(not torch.equal(w[0][k], w[1][k]) for k in w[0])


def test_the_harness_splits_what_the_ensemble_cannot_batch(tmp_path):
    """training_units: a seed bank is one unit; a part-trained member, a run alone in its
    group, a network with dropout are units of one; banks are halved while a worker would
    idle."""
    cfgs = _bank_cfgs(*CASES["edm"], seeds=(0, 1, 2, 3))
    jobs = [(c, "bank") for c in cfgs]
    assert [len(u) for u in runs.training_units(jobs, tmp_path, 1)] == [4]
    assert sorted(len(u) for u in runs.training_units(jobs, tmp_path, 3)) == [1, 1, 2]
    assert [len(u) for u in runs.training_units(jobs, tmp_path, 8)] == [1, 1, 1, 1]
    other = [(c, "other") for c in cfgs[:1]]  # the same config under another name
    assert sorted(map(len, runs.training_units(jobs + other, tmp_path, 1))) == [1, 4]
    folder = runs.run_dir(cfgs[0], "bank", tmp_path)  # cfgs[0] stopped at step 5 of 20:
    part = dataclasses.replace(cfgs[0], train=dataclasses.replace(cfgs[0].train, steps=5))
    runs._fit(runs._trainer(runs.build(part), folder))
    assert sorted(map(len, runs.training_units(jobs, tmp_path, 1))) == [1, 3]
    unet = [
        load_config("configs/digits_edm.yaml", [f"train.seed={s}", "model.overrides.dropout=0.1"])
        for s in (0, 1)
    ]
    assert "dropout 0.1" in ensemble.bank_problem(unet)
    assert [len(u) for u in runs.training_units([(c, "u") for c in unet], tmp_path, 1)] == [1, 1]
    assert ensemble.bank_problem(cfgs) is None
    board = [dataclasses.replace(c, train=dataclasses.replace(c.train, log="tensorboard"))
             for c in cfgs]  # fmt: skip
    assert "train.log: tensorboard" in ensemble.bank_problem(board)
