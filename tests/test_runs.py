"""The experiment harness (gmdiff.runs): cache, resume, snapshots, the sampling loop."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from gmdiff import config, runs, storage, train
from gmdiff.cli import load_config
from gmdiff.samplers import SAMPLERS
from gmdiff.schedules import EDM

TOY = "configs/toy_gmm.yaml"
SMALL = ["model.overrides.width=32", "model.overrides.depth=2", "train.batch_size=64"]


def _cfg(steps: int = 30, *extra: str) -> config.RunConfig:
    return load_config(TOY, [*SMALL, f"train.steps={steps}", "train.ckpt_every=10", *extra])


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_or_train_equals_the_cli_run_and_trains_once(tmp_path, monkeypatch):
    """The cached run's weights are those of `gmdiff train` on the same config (its EMA),
    bit for bit; a second call loads them without training."""
    cfg = _cfg()
    run, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path / "cache")
    cli_cfg = dataclasses.replace(cfg, out_dir=str(tmp_path / "cli"))
    runs.train(cli_cfg)
    ref = runs.build(cli_cfg)
    storage.load_checkpoint(tmp_path / "cli" / train.CHECKPOINT, ref.trained, ema=True)
    assert _same(run.trained, ref.trained)
    assert not run.trained.training and not any(p.requires_grad for p in run.trained.parameters())

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train.Trainer, "fit", refuse)
    again, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path / "cache")
    assert _same(again.trained, run.trained)


def test_two_processes_that_need_one_model_train_it_once(tmp_path):
    """Two chapters run side by side (``pytest -n 2``) that ask the cache for the same
    model: one trains it, the other waits on the folder's cache lock and then loads the
    same weights instead of failing on the Trainer's lock or training it a second time."""
    import subprocess
    import sys

    cfg = _cfg(400)
    cache = tmp_path / "cache"
    script = (
        "import sys, torch; from gmdiff import runs; from gmdiff.cli import load_config\n"
        f"cfg = load_config({TOY!r}, {[*SMALL, 'train.steps=400', 'train.ckpt_every=10']!r})\n"
        f"run, _ = runs.load_or_train(cfg, 'toy', cache_dir={str(cache)!r})\n"
        "torch.save(run.trained.state_dict(), sys.argv[1])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"w{i}.pt")])
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = (torch.load(tmp_path / f"w{i}.pt") for i in range(2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = runs.run_dir(cfg, "toy", cache) / train.LOG
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # one training, not two


GM_SGM = [  # Alg. 1's alternating mixture noise: its cycle must continue where it stopped
    "loss.name=dsm",
    "loss.options={noise: {name: gm_sgm, beta: 2.0}}",
    "schedule.name=ve",
    "schedule.options={sigma_min: 0.01, sigma_max: 4.0}",
]


@pytest.mark.parametrize("extra", [[], GM_SGM], ids=["edm", "gm_sgm_alternating"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, extra):
    """A run killed after its step-15 checkpoint (an odd step: the alternation's phase
    matters) resumes there (no step is redone) and ends with the weights of an
    uninterrupted run."""
    cfg = _cfg(30, "train.ckpt_every=5", *extra)
    whole, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path / "a")
    real_step = train.Trainer._train_step

    def dies_at_17(self, step):
        if step == 17:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(train.Trainer, "_train_step", dies_at_17)
    with pytest.raises(KeyboardInterrupt):
        runs.load_or_train(cfg, "toy", cache_dir=tmp_path / "b")
    assert runs._finished_at(runs.run_dir(cfg, "toy", tmp_path / "b")) == 15
    done = []

    def counting(self, step):
        done.append(step)
        return real_step(self, step)

    monkeypatch.setattr(train.Trainer, "_train_step", counting)
    resumed, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path / "b")
    assert done == list(range(15, 30))
    assert _same(resumed.trained, whole.trained)


def test_snapshots_equal_shorter_runs(tmp_path):
    """The snapshot at step 10 is the EMA of the same config trained for 10 steps (at step
    0 the initial weights), and asking for a snapshot before the cached final step
    retrains to give it."""
    cfg = _cfg()
    final, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path)
    again, snaps = runs.load_or_train(cfg, "toy", cache_dir=tmp_path, snapshot_steps=[0, 10])
    short, _ = runs.load_or_train(_cfg(10), "toy", cache_dir=tmp_path)
    assert _same(snaps[10], short.denoiser)
    assert _same(snaps[0], runs.build(cfg).denoiser)  # step 0: the seeded initialisation
    assert _same(again.trained, final.trained)
    assert not _same(short.trained, final.trained)
    with pytest.raises(ValueError, match="snapshot_steps"):
        runs.load_or_train(cfg, "toy", cache_dir=tmp_path, snapshot_steps=[31])


def test_the_cache_key_is_what_determines_the_weights(tmp_path):
    """out_dir, sample and evaluate settings do not change the cache folder; the seed does."""
    cfg = _cfg()
    other_sampling = dataclasses.replace(
        cfg, out_dir="elsewhere", sample=dataclasses.replace(cfg.sample, steps=3)
    )
    assert runs.run_dir(cfg, cache_dir=tmp_path) == runs.run_dir(other_sampling, cache_dir=tmp_path)
    assert runs.run_dir(cfg, cache_dir=tmp_path) != runs.run_dir(
        _cfg(30, "train.seed=1"), cache_dir=tmp_path
    )


def test_draw_samples_starts_at_the_prior_and_is_seeded():
    """x_T ~ N(0, sigma_max^2 I) for EDM (a sampler that returns x_T shows it); one seed
    gives one draw, another seed another."""

    def identity(denoiser, schedule, x_T, steps, *, generator=None):
        return x_T

    sch = EDM(sigma_max=7.0)
    x = runs.draw_samples(None, sch, identity, 1, (3,), 4000, seed=1, batch=4000)
    assert abs(float(x.std()) - 7.0) < 0.2
    small = runs.draw_samples(None, sch, identity, 1, (3,), 40, seed=1, batch=16)
    assert torch.equal(small, runs.draw_samples(None, sch, identity, 1, (3,), 40, seed=1, batch=16))
    assert small.shape == (40, 3)
    assert not torch.equal(
        runs.draw_samples(None, sch, identity, 1, (3,), 40, seed=2, batch=16), small
    )
    with pytest.raises(ValueError, match="must be >= 1"):
        runs.draw_samples(None, sch, identity, 1, (3,), 0)


@pytest.mark.parametrize(
    ("path", "sampler", "options"),
    [
        (TOY, "edm_stochastic", {"S_churn": 40.0, "S_noise": 1.007}),  # the probe
        ("configs/smd_toy.yaml", "ddpm", {}),  # an SMD network's eta: one draw per block
        ("configs/gm_ddpm_toy.yaml", "gm_ddpm", {"strategy": "random"}),  # reads denoiser.net
    ],
)
def test_samples_do_not_depend_on_the_batch(path, sampler, options, one_thread):
    """The seed and the sampler settings determine the samples, whatever the batch (the
    rows of one network call): 32 samples of a stochastic sampler at batch 8 and 32 are
    equal bit for bit (they differed by up to 8.9 when each batch was a sampler call of
    its own); with more samples than a block, too. The block (samples per sampler call)
    does change them: it orders the random draws."""
    run = runs.build(load_config(path, [f"sample.sampler={sampler}"]))
    run.denoiser.eval()

    def draw(n: int, batch: int, block: int = runs.SAMPLE_BLOCK) -> torch.Tensor:
        return runs.draw_samples(
            run.denoiser, run.schedule, SAMPLERS[sampler], run.cfg.sample.steps, run.shape, n,
            seed=4, batch=batch, block=block, **options,
        )  # fmt: skip

    whole = draw(32, 32)
    assert torch.isfinite(whole).all() and whole.std() > 0
    assert torch.equal(draw(32, 8), whole)
    # a batch that is no multiple of 4 takes another matmul kernel path: round-off only
    # (measured: <= 2e-5 here, 5e-4 for GM-DDPM's component draws at batch 3)
    assert (draw(32, 5) - whole).abs().max() < 1e-3
    blocks = draw(40, 16, block=16)
    assert torch.equal(draw(40, 8, block=16), blocks)
    assert torch.equal(blocks[:16], draw(16, 16))  # the first block is a 16-sample draw
    assert not torch.equal(blocks[:32], draw(32, 32, block=32))


def test_run_sample_uses_the_config_and_overrides(tmp_path):
    """Run.sample follows the config's sample section; keywords override it."""
    run, _ = runs.load_or_train(_cfg(10), "toy", cache_dir=tmp_path)
    a = run.sample(50, seed=3)
    b = runs.draw_samples(run.denoiser, run.schedule, SAMPLERS["heun"], 18, (2,), 50, seed=3)
    assert torch.equal(a, b)
    c = run.sample(50, seed=3, sampler="euler", steps=5)
    d = runs.draw_samples(run.denoiser, run.schedule, SAMPLERS["euler"], 5, (2,), 50, seed=3)
    assert torch.equal(c, d) and not torch.equal(a, c)


def test_the_cli_reaches_the_gm_sgm_chapter_model(tmp_path):
    """configs/gm_sgm_ring.yaml is the GM-SGM chapters' ring model (gm_sgm.ring_config loads
    it), and its mixture noise and mixture increments run through `gmdiff train` / `sample`."""
    from gmdiff.cli import main
    from gmdiff.noise import ScaleMixtureNoise
    from gmdiff.papers import gm_sgm as G

    yaml_cfg = load_config("configs/gm_sgm_ring.yaml")
    chapter = G.ring_config({"name": "gm_sgm", "beta": 2.0})  # the chapters' GM-SGM beta = 2
    assert config.sha(yaml_cfg) == config.sha(chapter)
    sgm = G.ring_config({"name": "gm_sgm", "beta": 1.0}, schedule={"name": "vp_linear"}, seed=3)
    assert (sgm.loss.options["noise"]["beta"], sgm.schedule.name, sgm.train.seed) == (1.0, "vp_linear", 3)
    assert isinstance(
        runs.with_noise_models(yaml_cfg.sample.options, "x")["noise"], ScaleMixtureNoise
    )
    small = ["train.steps=4", "model.overrides.width=16", "sample.n=8", "sample.steps=3"]
    sets = [a for s in [*small, f"out_dir={tmp_path}"] for a in ("--set", s)]
    assert main(["train", "--config", "configs/gm_sgm_ring.yaml", *sets]) == 0
    assert main(["sample", "--config", "configs/gm_sgm_ring.yaml", *sets]) == 0
    x = torch.load(tmp_path / "samples.pt", weights_only=True)["samples"]
    assert x.shape == (8, 2) and torch.isfinite(x).all()


def test_a_bank_trained_side_by_side_equals_serial_runs(tmp_path, monkeypatch):
    """load_or_train_many on the per-process path ($GMDIFF_BANK=serial): two worker
    processes give each run the weights of a serial load_or_train, bit for bit, in the
    order asked; a config listed twice trains once, and cached runs are loaded without
    training."""
    monkeypatch.setenv(runs.BANK_ENV, "serial")
    cfgs = [_cfg(20), _cfg(20, "train.seed=1"), _cfg(20, *GM_SGM)]
    jobs = [(c, "toy") for c in cfgs] + [(cfgs[0], "toy")]
    bank = runs.load_or_train_many(jobs, cache_dir=tmp_path / "bank", workers=2)
    serial = [runs.load_or_train(c, "toy", cache_dir=tmp_path / "serial")[0] for c in cfgs]
    assert all(_same(b.trained, s.trained) for b, s in zip(bank, serial, strict=False))
    assert _same(bank[3].trained, bank[0].trained)
    assert not _same(bank[0].trained, bank[1].trained)

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train.Trainer, "fit", refuse)
    again = runs.load_or_train_many(jobs, cache_dir=tmp_path / "bank", workers=2)
    assert _same(again[2].trained, serial[2].trained)


def test_a_bank_refuses_a_bad_config_before_training_and_reports_a_failed_worker(
    tmp_path, monkeypatch
):
    """A bank with one config that cannot build is refused with a sentence naming it
    before anything trains; an error met while training in a worker reaches the caller."""
    bad = _cfg(20, "model.overrides.width=-4", "train.seed=1")  # a seed bank but for width
    with pytest.raises(ValueError, match=r"job 1 \(toy\) of the bank: .*width must be >= 1"):
        runs.load_or_train_many([(_cfg(20), "toy"), (bad, "toy")], cache_dir=tmp_path, workers=2)
    assert not (tmp_path / "runs").exists()
    nan = _cfg(20, "train.lr=1e12", "train.grad_clip=0", "train.warmup_steps=0")
    with pytest.raises(RuntimeError, match="NaN or inf"):
        runs.load_or_train_many([(_cfg(20), "toy"), (nan, "toy")], cache_dir=tmp_path, workers=2)
    with pytest.raises(ValueError, match="workers"):
        runs.train_workers(0)
    monkeypatch.setenv(runs.WORKERS_ENV, "3")
    assert runs.train_workers() == 3
    monkeypatch.setenv(runs.WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="whole number"):
        runs.train_workers()


def test_an_ema_that_still_holds_its_initialisation_is_refused_before_training(tmp_path):
    """The harness refuses a run whose EMA would hold more than EMA_INIT_BOUND of the random
    initialisation (0.999 ** 30 = 97 %) with one sentence naming the fix, before training;
    EDM's ramp (ema_rampup) is accepted, and the run reports its adequacy."""
    bad = _cfg(30, "train.ema_rampup=0", "train.ema_decay=0.999")
    with pytest.raises(ValueError, match=r"97\.0% of its random initialisation.*ema_rampup"):
        runs.load_or_train(bad, "toy", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="ema_rampup"):
        runs.load_or_train_many([(bad, "toy")], cache_dir=tmp_path)
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    cfg = _cfg(40, "train.ema_rampup=0.05", "train.log_every=10")
    run, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path)
    a = run.adequacy()
    assert a["ema_init_share"] == 0.0 and a["steps"] == 40
    log = next((tmp_path / "runs").glob("*/train_log.jsonl")).read_text().splitlines()
    recs = [json.loads(line) for line in log]
    losses = [r["loss"] for r in recs]
    half = next(r["loss"] for r in recs if r["step"] == 20)  # windows end at 10, ..., 40
    assert a["final_loss"] == losses[-1] and a["final/best"] == losses[-1] / min(losses)
    assert a["last-half drop"] == pytest.approx(1 - losses[-1] / half)


def test_raw_weights_are_the_checkpoints_model_not_its_ema(tmp_path):
    cfg = _cfg(20, "train.ema_rampup=0.05")
    run, _ = runs.load_or_train(cfg, "toy", cache_dir=tmp_path)
    raw = runs.raw_weights(run)
    ref = runs.build(cfg)
    state = torch.load(next((tmp_path / "runs").glob("*/checkpoint.pt")), weights_only=True)
    ref.trained.load_state_dict(state["model"])
    assert _same(raw.trained, ref.trained) and not _same(raw.trained, run.trained)
    assert not raw.trained.training


def test_a_continuation_starts_from_the_given_run_and_is_cached(tmp_path):
    """load_or_train_from: with lr 1e-30 the continued run is its start (the EMA ramp copies
    the weights at step 0; the steps move no weight by more than 1e-29), with lr 2e-4 it moves from the start and not from a fresh
    initialisation; the second call loads the cached checkpoint without training."""
    start, _ = runs.load_or_train(_cfg(20, "train.ema_rampup=0.05"), "toy", cache_dir=tmp_path)
    frozen = runs.load_or_train_from(
        start, _cfg(5, "train.ema_rampup=0.05", "train.lr=1e-30", "train.seed=1"), "toy",
        cache_dir=tmp_path,
    )  # fmt: skip
    still = [
        (a - b).abs().max() for a, b in zip(frozen.trained.parameters(), start.trained.parameters())
    ]
    assert max(still) < 1e-29 and not frozen.trained.training
    cont_cfg = _cfg(5, "train.ema_rampup=0.05", "train.seed=1")
    cont = runs.load_or_train_from(start, cont_cfg, "toy", cache_dir=tmp_path)
    fresh, _ = runs.load_or_train(cont_cfg, "toy", cache_dir=tmp_path)
    moved = [
        (a - b).abs().max() for a, b in zip(cont.trained.parameters(), start.trained.parameters())
    ]
    gap = [
        (a - b).abs().max() for a, b in zip(cont.trained.parameters(), fresh.trained.parameters())
    ]
    assert 0 < max(moved) < max(gap)  # five small steps from the start, far from a fresh net
    ckpt = next(tmp_path.glob(f"runs/toy-from-*{config.sha(cont_cfg)}/checkpoint.pt"))
    mtime = ckpt.stat().st_mtime_ns
    again = runs.load_or_train_from(start, cont_cfg, "toy", cache_dir=tmp_path)
    assert ckpt.stat().st_mtime_ns == mtime and _same(again.trained, cont.trained)
