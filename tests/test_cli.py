"""The gmdiff command line: train -> sample -> evaluate on the toy config, config checks."""

import json
import multiprocessing as mp
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gmdiff.cli import load_config, main
from gmdiff.runs import loss_of, schedule_of
from gmdiff.samplers import SAMPLERS
from gmdiff.storage import lock_dir
from gmdiff.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS, SRC = ROOT / "configs", ROOT / "src"
TOY = str(CONFIGS / "toy_gmm.yaml")
SMD_TOY = str(CONFIGS / "smd_toy.yaml")


def tiny(out_dir, steps: int = 4) -> list[str]:
    return [
        "--config", TOY,
        "--set", f"out_dir={out_dir}",
        "--set", f"train.steps={steps}",
        "--set", "train.batch_size=64",
        "--set", "train.log_every=2",
        "--set", "model.overrides={embedding: fourier, width: 32, depth: 2}",
        "--set", "sample.n=32",
        "--set", "sample.steps=4",
    ]  # fmt: skip


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def same(a, b) -> bool:
    """Nested dicts / lists of tensors and plain values equal bit for bit."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)


def test_a_run_is_determined_by_its_config_and_seed(tmp_path):
    """The network is initialised from train.seed (issue 10): two runs of one config end
    with bit-identical model, EMA and optimizer; another seed gives another run."""
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        assert main(["train", *tiny(tmp_path / name), "--set", f"train.seed={seed}"]) == 0
    a, b, c = (checkpoint(tmp_path / name) for name in "abc")
    assert same(a, b)
    assert not same(a["model"], c["model"])


def test_train_sample_evaluate_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 4
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["steps"] == 4 and saved["model"]["overrides"]["width"] == 32
    assert logged_steps(out) == [2, 4]

    assert main(["sample", *tiny(out)]) == 0
    x = torch.load(out / "samples.pt", weights_only=True)["samples"]
    assert x.shape == (32, 2) and torch.isfinite(x).all()
    assert main(["sample", *tiny(out)]) == 0  # same seed, same samples
    assert torch.equal(torch.load(out / "samples.pt", weights_only=True)["samples"], x)

    assert main(["evaluate", *tiny(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 32
    assert metrics["sliced_wasserstein_2"] > 0 and metrics["nll_samples"] > metrics["nll_data"]

    assert main(["train", *tiny(out, steps=6)]) == 0  # resumes from step 4
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    assert logged_steps(out) == [2, 4, 6]
    assert main(["train", *tiny(out, steps=2), "--no-resume"]) == 0  # starts over
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert logged_steps(out) == [2]


def test_smd_train_sample_evaluate(tmp_path, capsys):
    """configs/smd_toy.yaml (loss smd): two trainings of the config end bit-identical; the
    SMD network draws its eta from the sampler's generator, so Alg. 2 (ddpm) gives the same
    samples for the same seed; DDIM and evaluate work; other preconditionings are refused."""

    def smd(out, *more: str) -> list[str]:
        return [
            "--config", SMD_TOY,
            "--set", f"out_dir={out}",
            "--set", "train.steps=20",
            "--set", "train.batch_size=64",
            "--set", "train.log_every=10",
            "--set", "sample.n=64",
            *more,
        ]  # fmt: skip

    out = tmp_path / "a"
    for run in (out, tmp_path / "b"):
        assert main(["train", *smd(run)]) == 0
    assert checkpoint(out)["step"] == 20 and same(checkpoint(out), checkpoint(tmp_path / "b"))

    def samples(*more: str) -> torch.Tensor:
        assert main(["sample", *smd(out, *more)]) == 0
        return torch.load(out / "samples.pt", weights_only=True)["samples"]

    x = samples()  # ddpm, all T = 10 steps
    assert x.shape == (64, 2) and torch.isfinite(x).all()
    assert torch.equal(samples(), x)
    ddim = samples("--set", "sample.sampler=ddim", "--set", "sample.steps=5")
    assert ddim.shape == (64, 2) and torch.isfinite(ddim).all() and not torch.equal(ddim, x)

    assert main(["evaluate", *smd(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 64 and metrics["sliced_wasserstein_2"] > 0
    capsys.readouterr()
    assert "loss.name = 'smd'" in error(capsys, "train", *smd(out, "--set", "model.precond=edm"))


def error(capsys, *argv: str) -> str:
    """The one line ``gmdiff`` prints on stderr for a user error, checking exit status 1
    (what earlier commands printed, e.g. train's progress lines, is dropped first)."""
    capsys.readouterr()
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"gmdiff {argv[0]}: error: "), err
    return err.removeprefix(f"gmdiff {argv[0]}: error: ").strip()


def test_unknown_and_mistyped_keys_are_named(tmp_path, capsys):
    assert error(capsys, "train", "--config", TOY, "--set", "train.lr_max=1").startswith(
        "unknown config key(s) train.lr_max; allowed here: ['steps',"
    )
    assert error(capsys, "train", "--config", TOY, "--set", "sampling.steps=1").startswith(
        "unknown config key(s) sampling;"
    )
    assert "train.steps must be of type int" in error(
        capsys, "train", "--config", TOY, "--set", "train.steps=many"
    )
    assert "data.options" in error(
        capsys, "train", "--config", TOY, "--set", "data.options={radius: 2, rings: 3}"
    )
    cfg = str(tmp_path / "c.yaml")
    raw = yaml.safe_load(Path(TOY).read_text())
    raw["sample"]["sampler"] = "euler_maruyama"
    raw["out_dir"] = str(tmp_path)
    Path(cfg).write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", cfg, "--set", "train.steps=1"]) == 0  # trains
    assert "sample.sampler = 'euler_maruyama'" in error(capsys, "sample", "--config", cfg)
    assert "model.precond: vp" in error(
        capsys, "train", "--config", TOY, "--set", "loss.name=eps",
        "--set", "schedule.name=ddpm_linear", "--set", "schedule.options={}",
    )  # fmt: skip
    assert error(capsys, "train", "--config", TOY, "--set", "model.precond=vp") == (
        "model.precond = 'vp' needs a VP schedule (schedule.name vp_linear, ddpm_linear or "
        "ddpm_cosine), got schedule.name = 'edm'"
    )
    none = tmp_path / "none"
    assert "train first" in error(capsys, "sample", "--config", TOY, "--set", f"out_dir={none}")
    assert "gmdiff sample" in error(
        capsys, "evaluate", "--config", TOY, "--set", f"out_dir={none}"
    )


def test_bad_files_and_values_get_one_sentence(tmp_path, capsys):
    """YAML syntax errors name the file (or the --set value) and the line; a config that is
    not a mapping, not text or missing is named; --debug raises with the traceback."""
    bad = toy_with(tmp_path, "  options: {k: 8, radius: 2.0, std: 0.1}\n", "  options: {k: 8\n")
    assert error(capsys, "train", "--config", str(bad)) == (
        f"config file {bad} is not valid YAML, line 10 column 6: expected ',' or '}}', but "
        "got ':' (while parsing a flow mapping at line 9)"
    )
    assert error(capsys, "sample", "--config", TOY, "--set", "model.overrides={width: 32") == (
        "the value of --set 'model.overrides={width: 32' is not valid YAML, line 1 column 11: "
        "expected ',' or '}', but got '<stream end>' (while parsing a flow mapping at line 1)"
    )
    bad.write_text("- a list\n")
    assert error(capsys, "evaluate", "--config", str(bad)) == (
        f"config file {bad} must hold a mapping of sections, got ['a list']"
    )
    bad.write_bytes(b"\x89PNG\r\n")
    assert error(capsys, "train", "--config", str(bad)) == f"config file {bad} is not UTF-8 text"
    missing = tmp_path / "missing.yaml"
    assert error(capsys, "train", "--config", str(missing)) == (
        f"config file {missing} not found; see configs/ for examples"
    )
    with pytest.raises(ValueError, match="not valid YAML") as err:
        main(["train", "--config", TOY, "--set", "train.lr=[", "--debug"])
    assert isinstance(err.value.__cause__, yaml.YAMLError)  # the parser's error, chained


def test_exit_status_and_stderr_of_the_console_command(tmp_path):
    """A real process: exit status 1, one sentence on stderr, nothing on stdout."""
    env = os.environ | {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    argv = ["train", "--config", TOY, "--set", "train.steps=0", "--set", f"out_dir={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "-m", "gmdiff.cli", *argv], env=env, capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "gmdiff train: error: train.steps = 0 is out of range; see the TrainConfig docstring "
        "(steps, batch_size, log_every, prefetch_factor >= 1; lr > 0; 0 <= ema_decay < 1; "
        "the others >= 0)\n"
    )
    assert not tmp_path.joinpath("config.yaml").exists()


def test_resume_of_another_run_is_refused_before_config_yaml_changes(tmp_path, capsys):
    """A checkpoint resumes only the run that wrote it: another batch, model or seed, or
    fewer steps than it holds, are refused with one sentence, and out_dir/config.yaml
    still describes the checkpoint; a busy out_dir is refused at once."""
    out = tmp_path / "run"
    assert main(["train", *tiny(out)]) == 0
    saved, ckpt = (out / "config.yaml").read_text(), out / "checkpoint.pt"
    fresh = f"; to start fresh, use another out_dir or delete {ckpt}"
    cases = {
        "train.batch_size=32": "train.batch_size 64 -> 32",
        "model.overrides.width=64": "model.overrides.width 32 -> 64",
        "train.seed=1": "train.seed 0 -> 1",
        "data.options={k: 4, radius: 2.0, std: 0.1}": "data.options.k 8 -> 4",
    }
    for override, change in cases.items():
        assert error(capsys, "train", *tiny(out), "--set", override) == (
            f"checkpoint {ckpt} was written by a run with another config ({change}; "
            f"checkpoint -> now){fresh}"
        )
    assert error(capsys, "train", *tiny(out, steps=3)) == (
        f"train.steps = 3 is below step 4 of checkpoint {ckpt}; raise train.steps to continue "
        f"that run{fresh}"
    )
    with lock_dir(out):
        assert error(capsys, "train", *tiny(out, steps=6)) == (
            f"out_dir {out} is in use by another run (PID {os.getpid()}); wait for it to end "
            "or choose another out_dir"
        )
    assert (out / "config.yaml").read_text() == saved
    assert checkpoint(out)["step"] == 4
    assert main(["train", *tiny(out), "--set", "sample.n=8", "--set", "train.log_every=1"]) == 0


def test_unreadable_checkpoints_and_unwritable_folders_are_named(tmp_path, capsys, monkeypatch):
    """A corrupt checkpoint and a folder that cannot take the results are named; sample
    checks its out_dir before drawing a sample; a full disk names the file."""
    out = tmp_path / "run"
    assert main(["train", *tiny(out)]) == 0
    good = tmp_path / "good.pt"
    good.write_bytes((out / "checkpoint.pt").read_bytes())
    (out / "checkpoint.pt").write_bytes(b"\x00" * 100)
    assert error(capsys, "sample", *tiny(out)) == (
        f"checkpoint {out}/checkpoint.pt is corrupt or not a torch checkpoint; delete it or "
        "point to another one"
    )
    assert error(capsys, "sample", *tiny(out), "--set", "model.overrides={width: 16}",
                 "--checkpoint", str(good)).startswith(
        f"checkpoint {good} was trained with another config than this one "
        "(model.overrides.depth 2 -> (absent); model.overrides.embedding 'fourier' -> (absent); "
        "model.overrides.width 32 -> 16; checkpoint -> config); sample and evaluate take the "
        "model's config from the checkpoint"
    )  # fmt: skip
    drawn = []
    monkeypatch.setitem(SAMPLERS, "heun", lambda *a, **k: drawn.append(1))
    not_a_dir = good / "samples"
    assert error(capsys, "sample", *tiny(out), "--set", f"out_dir={not_a_dir}",
                 "--checkpoint", str(good)) == f"{not_a_dir}: Not a directory"  # fmt: skip
    assert drawn == []

    def to_dev_full(fd, mode):
        os.close(fd)
        return open("/dev/full", mode)

    monkeypatch.setattr(os, "fdopen", to_dev_full)
    full = tmp_path / "full"
    assert error(capsys, "train", *tiny(full)) == f"{full}/config.yaml: No space left on device"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_sample_into_a_read_only_folder_fails_before_sampling(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny(out)]) == 0
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    argv = ["--set", f"out_dir={ro}", "--checkpoint", str(out / "checkpoint.pt")]
    assert error(capsys, "sample", *tiny(out), *argv) == f"{ro}: Permission denied"


STALLED = 10**6  # published by a child stopped inside a checkpoint write


def _train_child(argv: list[str], step, stall_at_save: int = 0) -> None:
    """A forked ``gmdiff train`` that publishes the index of the step it is in to ``step``
    (a shared Value). With ``stall_at_save`` = k it stops inside its k-th checkpoint
    write, the temp file written and not yet renamed, and publishes STALLED."""
    torch.set_num_threads(1)
    train_step, replace, saves = Trainer._train_step, os.replace, []

    def publishing(self, k):
        step.value = k
        return train_step(self, k)

    def stalling(src, dst):
        if Path(dst).name == "checkpoint.pt":
            saves.append(dst)
            if len(saves) == stall_at_save:
                step.value = STALLED
                time.sleep(60)
        replace(src, dst)

    Trainer._train_step, os.replace = publishing, stalling
    os._exit(main(argv))


KILLS = 20


def test_sigkill_at_random_moments_then_resume_is_an_uninterrupted_run(tmp_path, one_thread):
    """Fault injection: ``gmdiff train`` (48 steps, a checkpoint every 4) in a child process
    is killed by SIGKILL inside a checkpoint write, then at KILLS seeded random moments
    (a step drawn from the run's 48, plus a random delay of up to two steps; a child that
    resumes past its step is killed at a random moment of its start-up), and rerun after
    each kill. It ends with the model, EMA, optimizer and log of an uninterrupted run of
    the same config started fresh, bit for bit, with no temp file and no step logged
    twice. Children are forked from this warmed-up process: a fresh interpreter spends
    seconds importing."""
    fork, fresh, out = mp.get_context("fork"), tmp_path / "fresh", tmp_path / "killed"

    def run(out: Path, at: int = -1, delay: float | None = None, stall_at_save: int = 0) -> int:
        """Fork a run into ``out`` and SIGKILL it ``delay`` seconds after it enters step
        ``at`` (-1: after it starts; ``delay`` None: a minute, to finish); its exit code."""
        step = fork.Value("i", -1)
        argv = ["train", *tiny(out, steps=48), "--set", "train.ckpt_every=4"]
        child = fork.Process(target=_train_child, args=(argv, step, stall_at_save))
        child.start()
        while delay is not None and child.is_alive() and step.value < at:
            time.sleep(1e-4)
        child.join(60 if delay is None else delay)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join()
        return child.exitcode

    assert main(["train", *tiny(tmp_path / "warm-up", steps=1)]) == 0  # imports, first calls
    start = time.perf_counter()
    assert run(fresh) == 0  # the uninterrupted run
    duration = time.perf_counter() - start
    start = time.perf_counter()
    assert run(fresh) == 0  # a rerun of a finished run starts, finds nothing to do, exits
    setup = time.perf_counter() - start
    step_time = (duration - setup) / 48

    assert run(out, STALLED, 0.0, stall_at_save=2) == -signal.SIGKILL
    assert checkpoint(out)["step"] == 4 and len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1
    assert logged_steps(out)[-1] == 8  # logged past the checkpoint
    rng, killed = random.Random(15), 0
    for at in sorted(rng.randrange(48) for _ in range(KILLS)):
        if at < checkpoint(out)["step"]:
            code = run(out, delay=rng.uniform(0, setup))
        else:
            code = run(out, at, rng.uniform(0, 2 * step_time))
        killed += code == -signal.SIGKILL
    assert run(out) == 0

    assert killed >= KILLS // 2, f"only {killed} of {KILLS} children were killed mid-run"
    assert same(checkpoint(out), checkpoint(fresh))
    assert logged_steps(out) == list(range(2, 49, 2))
    assert (out / "train_log.jsonl").read_text() == (fresh / "train_log.jsonl").read_text()
    assert not list(out.glob(".*.tmp"))


def toy_with(tmp_path, line: str, replacement: str) -> Path:
    """The toy config with one of its lines replaced, as YAML text."""
    text = Path(TOY).read_text()
    assert text.count(line) == 1
    path = tmp_path / "c.yaml"
    path.write_text(text.replace(line, replacement))
    return path


def test_yaml_1_1_float_strings_are_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 (no dot) as a string; float keys take it, in the file and in
    --set alike, and hold the float."""
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}
    cfg = load_config(toy_with(tmp_path, "  lr: 1.0e-3\n", "  lr: 1e-3\n  adam_eps: 1e-8\n"))
    assert (cfg.train.lr, cfg.train.adam_eps) == (1e-3, 1e-8) and type(cfg.train.lr) is float
    cfg = load_config(TOY, ["train.lr=2e-4", "model.sigma_data=1", "train.grad_clip=0"])
    assert (cfg.train.lr, cfg.model.sigma_data, cfg.train.grad_clip) == (2e-4, 1.0, 0.0)
    assert type(cfg.model.sigma_data) is float


INT = "must be of type int (a whole number, not true/false)"
FLOAT = "must be of type float (a number such as 0.001 or 1e-3)"


@pytest.mark.parametrize(
    "line, bad, override, message",
    [
        ("  steps: 2000\n", "  steps: true\n", "train.steps=true", f"train.steps {INT}, got True"),
        ("  n: 2000\n", "  n: false\n", "sample.n=false", f"sample.n {INT}, got False"),
        ("  lr: 1.0e-3\n", "  lr: yes\n", "train.lr=yes", f"train.lr {FLOAT}, got True"),
        ("  lr: 1.0e-3\n", "  lr: fast\n", "train.lr=fast", f"train.lr {FLOAT}, got 'fast'"),
    ],
)
def test_bools_and_words_are_refused_where_numbers_belong(tmp_path, line, bad, override, message):
    """bool is an int subclass, yet ``steps: true`` is not 1 step; the file and --set give
    the same sentence, naming the key, what it takes and the value."""
    sentence = re.escape(f"config key {message}") + "$"
    with pytest.raises(ValueError, match=sentence):
        load_config(toy_with(tmp_path, line, bad))
    with pytest.raises(ValueError, match=sentence):
        load_config(TOY, [override])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    loss_of(cfg, schedule_of(cfg))
    assert cfg.train.steps >= 1


def test_paper_config_values():
    ddpm = load_config(CONFIGS / "ddpm_cifar10.yaml")  # Ho et al. 2020, App. B
    t = ddpm.train
    assert (t.lr, t.batch_size, t.steps, t.warmup_steps, t.ema_decay, t.grad_clip) == (
        2e-4,
        128,
        800_000,
        5000,
        0.9999,
        1.0,
    )
    assert ddpm.data.hflip and ddpm.loss.name == "eps"


def test_help_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "train" in text and "sample" in text and "evaluate" in text and "--set" in text
