"""FID with its protocol (offline: a stand-in torchscript file in place of clean-fid's
Inception weights), PNG files, and ``gmdiff evaluate`` on samples of a loaded model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as cleanfid_frechet
from PIL import Image
from torch import nn

from gmdiff.cli import main
from gmdiff.evaluation import fid_report, protocol_text
from gmdiff.images import grid, image_files, load_folder, save_pngs, to_uint8
from gmdiff.metrics import INCEPTION_FILE, frechet_distance, inception_features

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "configs" / "digits_edm.yaml")
TOY = str(ROOT / "configs" / "toy_gmm.yaml")


class _StandInInception(nn.Module):
    """Stands in for clean-fid's torchscript Inception (attribute ``layers``, and
    ``forward(x, return_features)`` resizing inside): 2048 features from channel means and
    a few pixels, at any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers((x - 128) / 128)


class _Layers(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # (B, 3 * 16)
        feats = torch.cat([pooled, pooled**2, torch.sin(3 * pooled)], 1)  # (B, 144)
        return feats.repeat(1, 15)[:, :2048]


@pytest.fixture(scope="module")
def inception_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inception")
    torch.jit.save(torch.jit.script(_StandInInception()), str(folder / INCEPTION_FILE))
    return folder


def _images(n: int, shift: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.4 * torch.randn(n, 3, 8, 8, generator=g) + shift).clamp(-1, 1)


# -- images ---------------------------------------------------------------------------------


def test_png_round_trip_and_grid(tmp_path):
    x = _images(5, 0.0, 0)
    folder, grid_file = save_pngs(x, tmp_path)
    assert min(p.name for p in folder.iterdir()) == "000000.png" and grid_file.is_file()
    back = load_folder(folder)
    assert torch.equal(to_uint8(back), to_uint8(x))
    assert (back - x).abs().max() <= 0.5 / 127.5 + 1e-6  # rounding to the nearest level
    g = grid(to_uint8(x), ncols=3, pad=1)
    assert g.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    assert np.array_equal(g[1:9, 10:18], to_uint8(x)[1].numpy())


def test_folder_reader_finds_images_in_sub_folders_in_one_order(tmp_path):
    """As clean-fid's folder mode: images at any depth (a class-per-folder layout), sorted
    by path, hidden files and folders skipped; a folder tree without images is refused."""
    x = _images(6, 0.0, 1)
    u8 = to_uint8(x).numpy()
    layout = ["b/0.png", "a/y/1.PNG", "a/2.png", "3.png", "a-b/4.png", ".ipynb_checkpoints/5.png"]
    for im, rel in zip(u8, layout, strict=True):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(tmp_path / rel, format="PNG")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / ".hidden.png").write_bytes(b"")  # hidden: skipped, not read
    order = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)]
    assert order == ["3.png", "a/2.png", "a/y/1.PNG", "a-b/4.png", "b/0.png"]
    back = to_uint8(load_folder(tmp_path))
    assert torch.equal(back, to_uint8(x)[[3, 2, 1, 4, 0]])
    assert torch.equal(to_uint8(load_folder(tmp_path, limit=2)), back[:2])
    empty = tmp_path / "empty"
    (empty / "sub" / "deeper").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"holds no images .*in sub-folders neither"):
        load_folder(empty)


# -- FID ------------------------------------------------------------------------------------


def test_frechet_distance_of_statistics_matches_clean_fid():
    g = np.random.default_rng(0)
    a, b = g.normal(size=(200, 16)), g.normal(0.3, 1.2, size=(150, 16))
    stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (a, b)]
    want = cleanfid_frechet(*stats[0], *stats[1])  # clean-fid's formula: scipy's sqrtm
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(want, rel=1e-8)
    with pytest.raises(ValueError, match="differ in dimension"):
        frechet_distance(stats[0][0], stats[0][1], stats[1][0][:3], stats[1][1][:3, :3])


def test_fid_matches_clean_fid_formula_and_protocol(tmp_path, inception_dir):
    ref = _images(60, 0.0, 1)
    save_pngs(ref, tmp_path / "ref")
    fake = _images(50, 0.2, 2)
    rep = fid_report(fake, tmp_path / "ref" / "images", weights_dir=inception_dir, seed=7)
    # the features of the PNGs read back, and of the samples, through the same extractor
    fa = inception_features(load_folder(tmp_path / "ref" / "images"), inception_dir).numpy()
    fb = inception_features(fake, inception_dir).numpy()
    fa, fb = fa.astype(np.float64), fb.astype(np.float64)
    stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (fb, fa)]
    want = frechet_distance(*stats[0], *stats[1])
    assert rep["fid"] == pytest.approx(want, rel=1e-6)
    assert rep["fid"] > 0.01
    same = fid_report(ref, tmp_path / "ref" / "images", weights_dir=inception_dir)
    assert abs(same["fid"]) < 1e-3  # identical 8-bit sets; 5e-5 is the float64 floor at F=2048
    p = rep["protocol"]
    assert p["n_samples"] == 50 and p["seed"] == 7 and p["inception_mode"] == "clean"
    assert "computed here from 60 images" in p["reference_origin"]
    assert 0 <= rep["precision"] <= 1 and 0 <= rep["recall"] <= 1
    # the same reference as precomputed statistics gives the same number
    np.savez(tmp_path / "ref_clean_stats.npz", mu=fa.mean(0), sigma=np.cov(fa, rowvar=False))
    rep2 = fid_report(fake, tmp_path / "ref_clean_stats.npz", weights_dir=inception_dir)
    assert rep2["fid"] == pytest.approx(rep["fid"], rel=1e-6)
    assert rep2["protocol"]["reference_origin"].startswith("precomputed statistics")
    assert "precision" not in rep2


def test_legacy_tensorflow_mode_resizes_inside_the_network(tmp_path, inception_dir):
    x = _images(20, 0.3, 2)
    legacy = inception_features(x[:2], inception_dir, mode="legacy_tensorflow")
    u8 = torch.round((x[:2] + 1) * 127.5)  # the 8-bit values, fed at their own size
    assert torch.allclose(legacy, _StandInInception()(u8), atol=1e-5)
    assert not torch.allclose(legacy, inception_features(x[:2], inception_dir), atol=1e-3)
    save_pngs(_images(20, 0.0, 1), tmp_path)
    mode = "legacy_tensorflow"
    rep = fid_report(x, tmp_path / "images", mode=mode, weights_dir=inception_dir)
    assert rep["protocol"]["inception_mode"] == "legacy_tensorflow"
    assert "legacy_tensorflow" in protocol_text(rep)
    with pytest.raises(ValueError, match="Inception mode"):
        fid_report(_images(4, 0, 0), tmp_path / "images", mode="tf", weights_dir=inception_dir)


# -- gmdiff evaluate ------------------------------------------------------------------------


def _edm_digits_state(path: Path) -> Path:
    from gmdiff import nets

    class Wrapper(nn.Module):  # EDM's layout: the raw network as ``model``
        def __init__(self, model):
            super().__init__()
            self.model = model

    torch.save(Wrapper(nets.build_net(nets.get_config("digits"), seed=0)).state_dict(), path)
    return path


def test_cli_evaluate_prints_fid_with_its_protocol(tmp_path, inception_dir, capsys):
    state = _edm_digits_state(tmp_path / "net.pt")
    out = tmp_path / "run"
    common = ["--config", DIGITS, "--set", f"out_dir={out}"]
    sample = ["sample", *common, "--pretrained", str(state), "--set", "sample.n=24",
              "--set", "sample.steps=3", "--set", "sample.seed=5", "--weights", "ema"]  # fmt: skip
    assert main(sample) == 0
    save_pngs(_images(30, 0.0, 3)[:, :1], tmp_path / "ref")
    ev = ["evaluate", *common, "--set", f"evaluate.fid_reference={tmp_path / 'ref' / 'images'}",
          "--set", f"evaluate.inception_dir={inception_dir}"]  # fmt: skip
    capsys.readouterr()
    assert main(ev) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("FID ") and "precision" in lines[0]
    assert "samples:     24 (seed 5, weights ema)" in text
    assert "EDM-format EDMPrecond state dict" in text and "heun, 3 steps" in text
    assert "computed here from 30 images" in text and "clean-fid mode 'clean'" in text
    assert str(inception_dir / INCEPTION_FILE) in text
    saved = json.loads((out / "metrics.json").read_text())
    assert f"FID {saved['fid']:.4g}" == lines[0].split("  ")[0]
    # missing Inception weights: one sentence saying how to provide them, nothing downloaded
    ev[-1] = f"evaluate.inception_dir={tmp_path / 'empty'}"
    assert main(ev) == 1
    err = capsys.readouterr().err
    assert INCEPTION_FILE in err and "GMDIFF_INCEPTION_DIR" in err and len(err.splitlines()) == 1


def test_cli_evaluate_likelihood_of_a_toy_model(tmp_path, capsys):
    """A loaded toy network's PF-ODE NLL is reported next to the exact NLL of the data."""
    from gmdiff import nets

    class Wrapper(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

    cfg_net = nets.get_config("toy_mlp", embedding="fourier", width=32, depth=2)
    state = tmp_path / "mlp.pt"
    torch.save(Wrapper(nets.build_net(cfg_net, seed=0)).state_dict(), state)
    common = ["--config", TOY, "--set", f"out_dir={tmp_path}", "--pretrained", str(state),
              "--set", "model.overrides={embedding: fourier, width: 32, depth: 2}"]  # fmt: skip
    assert main(["sample", *common, "--set", "sample.n=16", "--set", "sample.steps=3"]) == 0
    ev = ["evaluate", *common, "--set", "evaluate.likelihood_n=8",
          "--set", "evaluate.divergence=exact"]  # fmt: skip
    assert main(ev) == 0
    res = json.loads((tmp_path / "metrics.json").read_text())["likelihood"]
    assert res["likelihood_n"] == 8 and res["divergence"] == "exact" and res["nfe"] > 10
    # the data points are the ring's first 8 draws from evaluate.seed = 0, scored exactly
    from gmdiff.data import ring2d
    from gmdiff.likelihood import marginal_log_prob
    from gmdiff.schedules import EDM

    x = ring2d().sample(8, generator=torch.Generator().manual_seed(0)).float().double()
    edm = EDM(sigma_min=0.002, sigma_max=20.0)
    exact = -marginal_log_prob(ring2d(), edm, x, edm.t_min).mean().item()
    assert res["nll_exact"] == pytest.approx(exact, rel=1e-9) and np.isfinite(res["nll"])
    assert res["t_min"] == 0.002
