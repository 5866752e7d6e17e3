"""``train.log: tensorboard``: the log records also go to TensorBoard (through torch's
SummaryWriter, faked here: the tensorboard package is optional), image runs add a grid of
EMA samples at every checkpoint, a resumed run drops the events past its checkpoint, and
the setting changes no run's identity. One test writes and reads back a real event file
when the tensorboard package is installed."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from gmdiff import config, runs
from gmdiff.cli import main
from gmdiff.images import to_uint8, viewable_grid
from gmdiff.storage import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class FakeWriter:
    """torch.utils.tensorboard.SummaryWriter's calls, recorded."""

    made: ClassVar[list[FakeWriter]] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        self.images: list[tuple[str, int, np.ndarray, str]] = []
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, step, value))

    def add_image(self, tag: str, image: np.ndarray, step: int, dataformats: str) -> None:
        self.images.append((tag, step, image, dataformats))

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
    assert w.log_dir == str(out / "tensorboard") and w.purge_step == 1 and w.closed
    assert w.images == []  # 2-D toy data: no sample grid
    tags = ["train/loss", "train/lr", "train/grad_norm", "train/ema_init_share"]
    assert [(tag, step) for tag, step, _ in w.scalars] == [(t, s) for s in (2, 4) for t in tags]
    logged = (out / "train_log.jsonl").read_text().splitlines()
    assert len(logged) == 2 and str(w.scalars[4][2])[:6] in logged[1]
    assert '"grad_norm"' not in logged[0]  # the jsonl log is unchanged
    values = {(tag, step): v for tag, step, v in w.scalars}
    cfg = config.load_config(CONFIGS / "toy_gmm.yaml", ["train.steps=4"])
    from gmdiff.ema import ema_init_share

    assert values["train/ema_init_share", 4] == ema_init_share(cfg.train, 4)
    assert all(values["train/grad_norm", s] > 0 for s in (2, 4))
    assert main(["train", *tiny(out, 6), "--set", "train.log=tensorboard"]) == 0
    assert fake_tensorboard.made[1].purge_step == 5  # resumed at step 4: its events are kept
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


def tiny_images(out: Path, steps: int) -> list[str]:
    """A digits run small enough for a test: U-Net base 8, batch 8, 2-step Heun grids."""
    return [
        "--config", str(CONFIGS / "digits_edm.yaml"), "--set", f"out_dir={out}",
        "--set", "model.overrides={ch: 8}", "--set", f"train.steps={steps}",
        "--set", "train.batch_size=8", "--set", "train.log_every=2",
        "--set", "train.ckpt_every=2", "--set", "sample.steps=2", "--set", "sample.seed=3",
        "--set", "train.log=tensorboard",
    ]  # fmt: skip


def ema_grid(out: Path, steps: int) -> np.ndarray:
    """The grid the trainer should have written at its last checkpoint: PREVIEW_N samples
    of the checkpoint's EMA weights, drawn from sample.seed as the config says."""
    args = tiny_images(out, steps)
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    cfg = config.load_config(CONFIGS / "digits_edm.yaml", sets)
    run = runs.build(cfg)
    assert load_checkpoint(out / "checkpoint.pt", run.trained) == steps
    run.denoiser.eval()
    x = run.sample(runs.PREVIEW_N, seed=3)
    return viewable_grid(to_uint8(x), runs.PREVIEW_N)


def test_image_runs_write_a_grid_of_ema_samples_at_every_checkpoint(
    tmp_path, fake_tensorboard, one_thread
):
    out = tmp_path / "run"
    assert main(["train", *tiny_images(out, 4)]) == 0
    (w,) = fake_tensorboard.made
    assert [(tag, step, fmt) for tag, step, _, fmt in w.images] == [
        ("samples/ema", 2, "HWC"),
        ("samples/ema", 4, "HWC"),
    ]
    last = w.images[-1][2]
    # 4 x 4 digits of 8 px with 1 px borders (37 px), upscaled 8 times (each digit 64 px)
    assert last.dtype == np.uint8 and last.shape == (296, 296, 1)
    assert np.array_equal(last, ema_grid(out, 4))  # the EMA's samples, not the raw weights'
    assert not np.array_equal(w.images[0][2], last)  # it changes as the model trains
    # sampling for the grid leaves training alone: the same weights as a run without it
    plain = tmp_path / "plain"
    jsonl = [
        a if a != "train.log=tensorboard" else "train.log=jsonl" for a in tiny_images(plain, 4)
    ]
    assert main(["train", *jsonl]) == 0
    a = torch.load(out / "checkpoint.pt", weights_only=True)
    b = torch.load(plain / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_real_event_file_holds_the_scalars_and_grids_across_a_resume(tmp_path, one_thread):
    """With the tensorboard package: the event files read back (TensorBoard's own reader,
    which applies the resume's purge) hold each step's scalars and grid once, the step
    of the checkpoint a resumed run started from included, and the last grid is the
    checkpoint's EMA samples (grayscale written as RGB)."""
    pytest.importorskip("tensorboard")
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["train", *tiny_images(out, 4)]) == 0
    assert main(["train", *tiny_images(out, 6)]) == 0  # resumes from the step-4 checkpoint
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6]
    assert [e.step for e in acc.Images("samples/ema")] == [2, 4, 6]
    logged = [
        json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()
    ]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(logged, rel=1e-6)
    last = acc.Images("samples/ema")[-1]
    with Image.open(io.BytesIO(last.encoded_image_string)) as im:
        png = np.asarray(im.convert("RGB"))
    expected = ema_grid(out, 6)
    assert (last.height, last.width) == expected.shape[:2]
    assert np.array_equal(png, np.repeat(expected, 3, axis=2))
