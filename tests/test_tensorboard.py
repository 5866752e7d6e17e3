"""``train.log: tensorboard``: the log records also go to TensorBoard (through torch's
SummaryWriter, faked here: the tensorboard package is optional), a resumed run drops the
events past its checkpoint, and the setting changes no run's identity."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from gmdiff import config
from gmdiff.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class FakeWriter:
    """torch.utils.tensorboard.SummaryWriter's calls, recorded."""

    made: ClassVar[list[FakeWriter]] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, step, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    FakeWriter.made = []
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    return FakeWriter


def tiny(out: Path, steps: int) -> list[str]:
    return [
        "--config", str(CONFIGS / "toy_gmm.yaml"), "--set", f"out_dir={out}",
        "--set", f"train.steps={steps}", "--set", "train.batch_size=32",
        "--set", "train.log_every=2", "--set", "train.ckpt_every=2",
        "--set", "model.overrides={embedding: fourier, width: 16, depth: 2}",
    ]  # fmt: skip


def test_records_go_to_tensorboard_and_a_resume_purges_later_events(tmp_path, fake_tensorboard):
    out = tmp_path / "run"
    assert main(["train", *tiny(out, 4), "--set", "train.log=tensorboard"]) == 0
    (w,) = fake_tensorboard.made
    assert w.log_dir == str(out / "tensorboard") and w.purge_step == 0 and w.closed
    tags = ["train/loss", "train/lr", "train/grad_norm", "train/ema_init_share"]
    assert [(tag, step) for tag, step, _ in w.scalars] == [(t, s) for s in (2, 4) for t in tags]
    logged = (out / "train_log.jsonl").read_text().splitlines()
    assert len(logged) == 2 and str(w.scalars[4][2])[:6] in logged[1]
    assert '"grad_norm"' not in logged[0]  # the jsonl log is unchanged
    values = {(tag, step): v for tag, step, v in w.scalars}
    cfg = config.load_config(CONFIGS / "toy_gmm.yaml", ["train.steps=4"])
    from gmdiff.train import ema_init_share

    assert values["train/ema_init_share", 4] == ema_init_share(cfg.train, 4)
    assert all(values["train/grad_norm", s] > 0 for s in (2, 4))
    assert main(["train", *tiny(out, 6), "--set", "train.log=tensorboard"]) == 0
    assert fake_tensorboard.made[1].purge_step == 4  # resumed from the step-4 checkpoint
    assert [s for _, s, _ in fake_tensorboard.made[1].scalars] == [6] * len(tags)
    assert main(["train", *tiny(out, 8)]) == 0  # jsonl alone: resumes, no writer
    assert len(fake_tensorboard.made) == 2


def test_missing_package_and_bad_value_are_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    assert main(["train", *tiny(out, 2), "--set", "train.log=tensorboard"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install tensorboard" in err
    assert not (out / "checkpoint.pt").exists()
    assert main(["train", *tiny(out, 2), "--set", "train.log=csv"]) == 1
    assert "train.log must be one of" in capsys.readouterr().err


def test_the_log_setting_changes_no_run_hash():
    """train.log is bookkeeping (gmdiff.config.BOOKKEEPING): it never enters a run's
    identity, so cached chapter runs keep their hash (measured: the shipped configs'
    hashes equal those of the commit before train.log existed) and either value trains
    the same weights under the same hash."""
    for name in ("toy_gmm", "digits_edm", "ddpm_cifar10"):
        path = CONFIGS / f"{name}.yaml"
        plain, board = config.load_config(path), config.load_config(path, ["train.log=tensorboard"])
        assert "log" not in config.identity(plain)["train"]
        assert config.sha(plain) == config.sha(board)


def test_unclipped_runs_log_the_same_gradient_norm(tmp_path, fake_tensorboard):
    """Without clipping the norm is computed for TensorBoard alone; it is the norm
    clipping would see: the same run with a clip too large to act logs the same values."""
    for clip in ("0", "1e9"):
        out = tmp_path / f"clip{clip}"
        run = [*tiny(out, 2), "--set", "train.log=tensorboard", "--set", f"train.grad_clip={clip}"]
        assert main(["train", *run]) == 0
    norms = [
        [v for tag, _, v in w.scalars if tag == "train/grad_norm"] for w in fake_tensorboard.made
    ]
    assert len(norms[0]) == 1 and norms[0] == pytest.approx(norms[1], rel=1e-6)
