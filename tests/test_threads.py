"""Intra-op threads (gmdiff.threads, issue 31): the ``train.threads`` / ``--threads``
setting, ``auto``'s measured rule, and its record with the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gmdiff import runs, threads
from gmdiff.cli import load_config, main

ROOT = Path(__file__).resolve().parents[1]
TOY, DIGITS = str(ROOT / "configs/toy_gmm.yaml"), str(ROOT / "configs/digits_edm.yaml")


def tiny(out_dir, steps: int = 4) -> list[str]:
    return [
        "--config", TOY,
        "--set", f"out_dir={out_dir}",
        "--set", f"train.steps={steps}",
        "--set", "train.batch_size=64",
        "--set", "model.overrides={embedding: fourier, width: 32, depth: 2}",
        "--set", "sample.n=32",
        "--set", "sample.steps=4",
    ]  # fmt: skip


def error(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 1
    return capsys.readouterr().err.strip().removeprefix(f"gmdiff {argv[0]}: error: ")


def test_settings_are_auto_or_a_whole_number():
    assert threads.check("auto") == "auto"
    assert threads.check(3) == 3 and threads.check("2") == 2
    for bad in (0, -1, True, 1.5, "two", "", None):
        with pytest.raises(ValueError) as err:
            threads.check(bad)
        assert str(err.value) == (
            f"train.threads must be 'auto' or a whole number >= 1, got {bad!r}"
        )
    assert threads.choose(3, 0.0) == 3 and threads.choose(1, 1e15) == 1


def test_auto_picks_one_thread_below_the_measured_size_and_the_default_above(monkeypatch):
    """The toy MLP (configs/toy_gmm.yaml, 0.28 GFLOP a forward call at batch 512) runs on
    one thread, the digits U-Net (configs/digits_edm.yaml, 3.9 GFLOP at batch 128) on
    torch's default ($OMP_NUM_THREADS here), whatever this process's own count is; on
    CUDA auto keeps the default."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    toy, digits = (runs.build(load_config(path)) for path in (TOY, DIGITS))
    toy_flops = threads.forward_flops(toy.denoiser, toy.shape, 512)
    digits_flops = threads.forward_flops(digits.denoiser, digits.shape, 128)
    assert toy_flops == pytest.approx(0.278e9, rel=0.01)
    assert digits_flops == pytest.approx(3.92e9, rel=0.01)
    assert toy_flops < threads.AUTO_FLOPS < digits_flops
    assert runs.train_threads(toy) == 1
    assert runs.train_threads(digits) == 3
    assert threads.choose("auto", toy_flops, cuda=True) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.default_threads() == len(os.sched_getaffinity(0))


def test_auto_and_the_wait_policy_agree_with_the_stored_measurement():
    """results/bench_cpu.json's threads rows (make bench) hold what the rule rests on:
    each model's auto is the rule's choice for its measured FLOPs; with OpenMP's default
    wait two threads took over twice as long as with the passive wait, which in turn kept
    them within 1.5 times one thread; the small model gained nothing from a second thread
    without extra load."""
    bench = json.loads((ROOT / "results/bench_cpu.json").read_text())["cpu"]["thread_rows"]
    assert bench["auto_flops"] == threads.AUTO_FLOPS
    for row in bench["rows"]:
        flops = row["gflop_per_call"] * 1e9
        assert row["auto"] == (1 if flops < threads.AUTO_FLOPS else bench["default_threads"])
        assert row["ratio_spin2_2"]["median"] > 2, row
        assert row["ratio_2_1"]["median"] < 1.5, row
        if flops < threads.AUTO_FLOPS and row["phase"] == "quiet":
            assert row["ratio_2_1"]["median"] >= 0.95, row
    assert {r["auto"] for r in bench["rows"]} == {1, bench["default_threads"]}


def test_the_thread_setting_is_recorded_with_the_run(tmp_path, capsys):
    """config.yaml keeps the setting, the checkpoint the count of each stretch of steps
    (a resumed run on other threads adds one), samples.pt and metrics.json the count that
    drew and scored them; the caller's thread count is restored after each command."""
    out, before = tmp_path / "run", torch.get_num_threads()
    assert main(["train", *tiny(out)]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["threads"] == "auto"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["threads"] == [[0, 1]] and ckpt["config"]["threads"] == "auto"
    assert torch.get_num_threads() == before

    assert main(["train", *tiny(out, steps=6), "--threads", "2"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["threads"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=True)["threads"] == [[0, 1], [4, 2]]
    assert main(["train", *tiny(out, steps=8), "--threads", "2"]) == 0  # same count: no entry
    assert torch.load(out / "checkpoint.pt", weights_only=True)["threads"] == [[0, 1], [4, 2]]

    assert main(["sample", *tiny(out)]) == 0
    assert torch.load(out / "samples.pt", weights_only=True)["threads"] == 1
    assert main(["evaluate", *tiny(out), "--threads", "2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == before


def test_the_model_cache_trains_auto_runs_on_one_thread(tmp_path):
    """The chapters' harness (runs.load_or_train) keeps its one thread per run for "auto",
    so no stored chapter output depends on the new setting; a number is honoured."""
    cfg = load_config(TOY, ["model.overrides.width=32", "model.overrides.depth=2",
                            "train.batch_size=64", "train.steps=3"])  # fmt: skip
    with threads.using(2):
        runs.load_or_train(cfg, "toy", cache_dir=tmp_path)
        two = load_config(TOY, ["train.threads=2", "train.steps=3",
                                "model.overrides.width=32", "model.overrides.depth=2",
                                "train.batch_size=64"])  # fmt: skip
        runs.load_or_train(two, "toy", cache_dir=tmp_path)
        assert torch.get_num_threads() == 2
    ckpts = {
        p.parent.name: torch.load(p, weights_only=True)["threads"]
        for p in (tmp_path / "runs").glob("*/checkpoint.pt")
    }
    assert sorted(ckpts.values()) == [[[0, 1]], [[0, 2]]]


def test_bad_thread_settings_are_one_sentence(capsys, tmp_path):
    out = str(tmp_path)
    assert error(capsys, "train", "--config", TOY, "--threads", "0") == (
        "--threads must be 'auto' or a whole number >= 1, got 0"
    )
    assert error(capsys, "sample", "--config", TOY, "--threads", "many") == (
        "--threads must be 'auto' or a whole number >= 1, got 'many'"
    )
    assert error(capsys, "train", "--config", TOY, "--set", f"out_dir={out}",
                 "--set", "train.threads=true") == (
        "train.threads must be 'auto' or a whole number >= 1, got True"
    )  # fmt: skip
    assert error(capsys, "evaluate", "--config", TOY, "--set", "train.threads=-2") == (
        "train.threads must be 'auto' or a whole number >= 1, got -2"
    )


@pytest.mark.parametrize("given", [None, "active"])
def test_the_cli_prefers_a_passive_wait_before_torch_loads(given):
    """Importing gmdiff.cli in a fresh process sets OMP_WAIT_POLICY=PASSIVE before torch
    loads OpenMP, unless the environment already chose one; once torch is loaded (as in
    this process) it is left alone."""
    env = {k: v for k, v in os.environ.items() if k != threads.WAIT_ENV}
    env["PYTHONPATH"] = str(ROOT / "src")
    if given:
        env[threads.WAIT_ENV] = given
    code = "import os, gmdiff.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == (given or "PASSIVE")
    assert threads.prefer_passive_wait() is False  # torch is loaded here
