"""IS and KID through torch-fidelity (an optional extra): the one-sentence failures run
everywhere; the metrics, with a stand-in feature extractor in place of Inception (no
weights needed), run where torch-fidelity is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from gmdiff import fidelity
from gmdiff.cli import main
from gmdiff.data import digits8x8
from gmdiff.images import save_pngs
from gmdiff.storage import atomic_save

DIGITS = str(Path(__file__).resolve().parents[1] / "configs" / "digits_edm.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")


class StandIn(torch.nn.Module):
    """A fixed random map from uint8 images (B, 3, 8, 8) to 1008 'logits' and 64 'pool'
    features: Inception's interface without its weights."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.pool = torch.randn(192, 64, generator=g) / 192**0.5
        self.head = torch.randn(64, 1008, generator=g)

    def forward(self, u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert u8.dtype == torch.uint8 and u8.shape[1] == 3
        pool = (u8.float().flatten(1) / 255 - 0.5) @ self.pool
        return pool @ self.head, pool


def _digits(n: int, offset: int = 0) -> torch.Tensor:
    return digits8x8()[0][offset : offset + n]


def _run(tmp_path: Path, n: int = 200) -> list[str]:
    """A digits run folder holding samples.pt of n real digits (no training needed)."""
    out = tmp_path / "run"
    out.mkdir()
    atomic_save({"samples": _digits(n), "sampler": "heun", "steps": 18, "seed": 0,
                 "weights": "ema", "origin": "real digits", "centered": True,
                 "pretrained": "real digits", "pretrained_sha256": "0" * 16},
                out / "samples.pt")  # fmt: skip
    return ["evaluate", "--config", DIGITS, "--set", f"out_dir={out}"]


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gmdiff evaluate: error:"), err
    return err


def test_missing_weights_file_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GMDIFF_INCEPTION_DIR", raising=False)
    args = _run(tmp_path)
    empty = tmp_path / "weights"
    empty.mkdir()
    assert main([*args, "--set", "evaluate.metrics=[is]", "--set",
                 f"evaluate.inception_dir={empty}"]) == 1  # fmt: skip
    err = _one_sentence(capsys)
    assert fidelity.WEIGHTS_FILE in err and str(empty) in err and fidelity.WEIGHTS_URL in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_missing_library_and_bad_settings_are_one_sentence(tmp_path, capsys, monkeypatch):
    args = _run(tmp_path)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / fidelity.WEIGHTS_FILE).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if absent
    use = ["--set", f"evaluate.inception_dir={weights}"]
    assert main([*args, *use, "--set", "evaluate.metrics=[is, kid]",
                 "--set", f"evaluate.fid_reference={tmp_path}"]) == 1  # fmt: skip
    assert "pip install" in _one_sentence(capsys)
    assert main([*args, *use, "--set", "evaluate.metrics=[kid]"]) == 1
    assert "evaluate.fid_reference" in _one_sentence(capsys)
    assert main([*args, *use, "--set", "evaluate.metrics=[fid]"]) == 1
    assert "evaluate.metrics" in _one_sentence(capsys)


def test_is_and_kid_with_a_stand_in_extractor(tmp_path):
    """torch-fidelity's IS and KID on stand-in features: constant logits give IS = 1
    exactly, ten equally used one-hot classes give IS near 10 (below it by the splits'
    class imbalance); KID against other digits is small, against the same digits with
    half the contrast large."""
    pytest.importorskip("torch_fidelity")
    net = StandIn()
    kw = {"extractor": net, "network": "stand-in"}

    def flat(u8):
        return torch.zeros(len(u8), 1008), torch.zeros(len(u8), 64)

    def onehot(u8):  # the class is the image's grey level, 0..9
        k = (u8[:, 0, 0, 0].double() / 255 * 9).round().long()
        return 50 * torch.nn.functional.one_hot(k, 1008).float(), torch.zeros(len(u8), 64)

    one = fidelity.report(_digits(100), ["is"], extractor=flat, network="zeros")
    assert one["inception_score"]["mean"] == pytest.approx(1.0, abs=1e-12)
    levels = (torch.arange(1000) % 10).float() / 9 * 2 - 1
    ten = fidelity.report(levels[:, None, None, None].expand(-1, 1, 8, 8), ["is"],
                          extractor=onehot, network="1-hot")  # fmt: skip
    assert 9.0 < ten["inception_score"]["mean"] <= 10.0 + 1e-9, ten
    save_pngs(_digits(700, offset=1000), tmp_path / "ref")
    ref = tmp_path / "ref" / "images"
    same = fidelity.report(_digits(1000), ["is", "kid"], ref, **kw)
    moved = fidelity.report(_digits(1000).clamp(-1, 1) * 0.5, ["kid"], ref, **kw)
    k0, k1 = same["kid"], moved["kid"]
    # measured: 0.0021 +- 0.0002 (other writers' digits), 0.101 +- 0.0004 (contrast halved)
    assert 0 < k0["mean"] < 0.01 and k1["mean"] > 20 * k0["mean"], (k0, k1)
    p = same["is_kid_protocol"]
    assert p["kid_subset_size"] == 700 and p["kid_subsets"] == 100 and p["n_reference"] == 700
    assert p["is_splits"] == 10 and p["network"] == "stand-in"


def test_gmdiff_evaluate_reports_is_and_kid_with_the_protocol(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch_fidelity")
    monkeypatch.setattr(fidelity, "load_inception", lambda d, dev: (StandIn(), "stand-in"))
    save_pngs(_digits(300, offset=800), tmp_path / "ref")
    args = _run(tmp_path, 300)
    # fid_reference also asks for FID, which needs clean-fid's weights: IS alone here
    assert main([*args, "--set", "evaluate.metrics=[is]"]) == 0
    out = capsys.readouterr().out
    assert "IS " in out and "network:  stand-in" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["inception_score"]["mean"] > 1 and "sliced_wasserstein_2" in metrics
    assert metrics["is_kid_protocol"]["n_samples"] == 300
    monkeypatch.setattr("gmdiff.evaluation.fid_report", lambda *a, **k: {"fid": 0.0,
                        "protocol": {}})  # fmt: skip
    monkeypatch.setattr("gmdiff.cli.protocol_text", lambda r: "FID (stubbed)")
    ref = tmp_path / "ref" / "images"
    assert main([*args, "--set", "evaluate.metrics=[is, kid]", "--set",
                 f"evaluate.fid_reference={ref}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "KID " in out and "subsets of 300" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) >= {"fid", "inception_score", "kid", "is_kid_protocol"}


def test_load_inception_builds_torch_fidelity_s_network(tmp_path, monkeypatch):
    """The real torch-fidelity network behind :func:`fidelity.load_inception` (its weights
    replaced by the random initialisation: none can be downloaded here) gives the 1008
    unbiased logits and 2048 pool features of 8x8 grey digits, and names its weights."""
    tf = pytest.importorskip("torch_fidelity")
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    (tmp_path / fidelity.WEIGHTS_FILE).write_bytes(b"")
    monkeypatch.setattr(inc.torch, "load", lambda *a, **k: {})
    monkeypatch.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
    net, network = fidelity.load_inception(tmp_path, "cpu")
    logits, pool = fidelity.features(_digits(2), net, "cpu")
    assert logits.shape == (2, 1008) and pool.shape == (2, 2048)
    assert torch.isfinite(logits).all() and torch.isfinite(pool).all()
    assert str(tmp_path / fidelity.WEIGHTS_FILE) in network and tf.__version__ in network


# -- a study that lists `is` in its scores (GM-DDPM's tables, profile full) ----------------


def _weights(folder: Path, clean_fid: bool = True, fidelity_weights: bool = True) -> Path:
    """A $GMDIFF_INCEPTION_DIR holding (empty) clean-fid and torch-fidelity weights files."""
    from gmdiff.metrics import INCEPTION_FILE

    folder.mkdir(exist_ok=True)
    if clean_fid:
        (folder / INCEPTION_FILE).write_bytes(b"")
    if fidelity_weights:
        (folder / fidelity.WEIGHTS_FILE).write_bytes(b"")
    return folder


def _cifar(tmp_path: Path) -> Path:
    from test_data import fake_cifar

    return fake_cifar(tmp_path / "cifar").parent


def test_full_gmd_tables_refuses_without_fidelity_weights_or_library(tmp_path, monkeypatch):
    """The full profile (scores: [fid, is]) refuses when it opens, in one sentence saying how
    to provide what is missing; the ci profile needs neither and gets no Inception Score."""
    from gmdiff.study import Study

    cifar = _cifar(tmp_path)
    folder = _weights(tmp_path / "weights", fidelity_weights=False)  # clean-fid's file only
    monkeypatch.setenv("GMDIFF_INCEPTION_DIR", str(folder))
    with pytest.raises(FileNotFoundError) as err:
        Study.open("gmd_tables", "full", data_dir=cifar)
    said = str(err.value)
    assert len(said.splitlines()) == 1 and said.count(". ") == 0, said
    assert str(folder / fidelity.WEIGHTS_FILE) in said and fidelity.WEIGHTS_URL in said
    assert "GMDIFF_INCEPTION_DIR" in said
    _weights(folder)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if absent
    with pytest.raises(ValueError, match="torch-fidelity.*pip install") as err:
        Study.open("gmd_tables", "full", data_dir=cifar)
    assert len(str(err.value).splitlines()) == 1
    ci = Study.open("gmd_tables", "ci")  # no torch-fidelity, no weights needed
    assert ci.images.scores == ("fd-digits",) and ci.images.inception_score() is None


def test_study_scores_must_name_known_metrics(monkeypatch):
    from gmdiff import study

    real = study.read
    table = real("gmd_tables")
    table["ci"]["study"] = {**table["ci"]["study"], "scores": ["fid"]}  # digits: FD-digits
    monkeypatch.setattr(study, "read", lambda chapter: table)
    with pytest.raises(ValueError, match="study.scores must be .*'fd-digits', 'is', 'kid'"):
        study.Study.open("gmd_tables", "ci")


def test_full_gmd_tables_scores_is_through_fidelity(tmp_path, monkeypatch):
    """With the weights and a stand-in torch-fidelity (its IS function returns a planted
    value) and a stand-in network, the full study's Inception Score is fidelity's: 10
    splits, seed 2020, on the 1008 logits of the samples; ImageScores puts it under "is"."""
    from types import SimpleNamespace

    from gmdiff.papers import gm_ddpm as P
    from gmdiff.study import Study

    seen = []

    def isc(logits, splits, shuffle, seed):
        seen.append((tuple(logits.shape), splits, shuffle, seed))
        return {"inception_score_mean": 7.25, "inception_score_std": 0.5}

    lib = SimpleNamespace(metric_isc=SimpleNamespace(isc_features_to_metric=isc))
    monkeypatch.setitem(sys.modules, "torch_fidelity", lib)
    loaded = []

    def load(weights_dir, device):
        loaded.append(fidelity.weights_path(weights_dir))
        return StandIn(), "stand-in"

    monkeypatch.setattr(fidelity, "load_inception", load)
    folder = _weights(tmp_path / "weights")
    monkeypatch.setenv("GMDIFF_INCEPTION_DIR", str(folder))
    S = Study.open("gmd_tables", "full", data_dir=_cifar(tmp_path))
    assert S.images.scores == ("fid", "is")
    inception = S.images.inception_score("cpu")
    assert loaded == [folder / fidelity.WEIGHTS_FILE]
    ref = _digits(40)
    score = P.ImageScores(ref, lambda x: x.flatten(1)[:, :4], 20, 0, None, inception)
    out = score(_digits(20, offset=100))
    assert out["is"] == 7.25 and set(out) == {"fd", "is", "precision", "recall"}
    assert seen == [((20, 1008), fidelity.IS_SPLITS, True, fidelity.RNG_SEED)]
    assert fidelity.IS_SPLITS == 10
