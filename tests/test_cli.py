"""The gmdiff command line: train -> sample -> evaluate on the toy config, config checks."""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from gmdiff.cli import _loss, _schedule, load_config, main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOY = str(CONFIGS / "toy_gmm.yaml")


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


def test_unknown_and_mistyped_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) train.lr_max"):
        main(["train", "--config", TOY, "--set", "train.lr_max=1"])
    with pytest.raises(ValueError, match=r"unknown config key\(s\) sampling"):
        main(["train", "--config", TOY, "--set", "sampling.steps=1"])
    with pytest.raises(ValueError, match="train.steps must be of type int"):
        main(["train", "--config", TOY, "--set", "train.steps=many"])
    with pytest.raises(ValueError, match="data.options"):
        main(["train", "--config", TOY, "--set", "data.options={radius: 2, rings: 3}"])
    with pytest.raises(ValueError, match="sample.sampler = 'euler_maruyama'"):
        cfg = str(tmp_path / "c.yaml")
        raw = yaml.safe_load(Path(TOY).read_text())
        raw["sample"]["sampler"] = "euler_maruyama"
        raw["out_dir"] = str(tmp_path)
        Path(cfg).write_text(yaml.safe_dump(raw))
        main(["train", "--config", cfg, "--set", "train.steps=1"])  # trains
        main(["sample", "--config", cfg])
    with pytest.raises(ValueError, match="model.precond: vp"):
        main(["train", "--config", TOY, "--set", "loss.name=eps",
              "--set", "schedule.name=ddpm_linear", "--set", "schedule.options={}"])  # fmt: skip
    with pytest.raises(FileNotFoundError, match="train first"):
        main(["sample", "--config", TOY, "--set", f"out_dir={tmp_path / 'none'}"])
    with pytest.raises(FileNotFoundError, match="gmdiff sample"):
        main(["evaluate", "--config", TOY, "--set", f"out_dir={tmp_path / 'none'}"])


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
    _loss(cfg, _schedule(cfg))
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
