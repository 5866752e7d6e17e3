"""Tests of gmdiff.metrics and gmdiff.digit_classifier: each metric against a closed form
or a hand computation, the digit classifier's accuracy, FD-digits and IS-digits."""

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import LinAlgWarning
from torch import nn

from gmdiff.analytic import Gaussian
from gmdiff.data import digits8x8
from gmdiff.digit_classifier import classifier_accuracy, train_digit_classifier
from gmdiff.metrics import (
    INCEPTION_FILE,
    classifier_score,
    fid_inception,
    fraction_unexplained_variance,
    frechet_distance_digits,
    frechet_distance_features,
    inception_features,
    kl_monte_carlo,
    mean_nll,
    mmd_rbf,
    noise_floor,
    precision_recall,
    psnr,
    sliced_wasserstein,
)

F64 = torch.float64


def _gaussian(mean, std):
    mean = torch.as_tensor(mean, dtype=F64)
    return Gaussian.from_cov(mean, std**2 * torch.eye(mean.shape[0], dtype=F64))


def _randn(n, d, seed, mean=0.0, std=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.as_tensor(mean, dtype=F64) + std * torch.randn(n, d, generator=g, dtype=F64)


# -- toy metrics ----------------------------------------------------------------------------


def test_mean_nll_is_gaussian_entropy():
    d, s = 3, 0.5
    x = _randn(20000, d, 0, std=s)
    entropy = 0.5 * d * math.log(2 * math.pi * math.e * s**2)
    g = _gaussian([0.0] * d, s)
    assert mean_nll(x, g) == pytest.approx(entropy, abs=0.03)
    assert mean_nll(x, lambda z: g.log_prob(z, 1e-3)) == mean_nll(x, g, sigma=1e-3)
    with pytest.raises(ValueError, match="log_prob"):
        mean_nll(x, 3.0)


def test_kl_monte_carlo_closed_form():
    d, s, mu = 2, 2.0, torch.tensor([1.0, 1.0], dtype=F64)
    p, q = _gaussian([0.0, 0.0], 1.0), _gaussian(mu, s)
    exact = 0.5 * (d / s**2 + mu.dot(mu).item() / s**2 - d + d * math.log(s**2))
    assert kl_monte_carlo(_randn(20000, d, 1), p, q) == pytest.approx(exact, abs=0.03)


def _mmd_gauss(m1, s1, m2, s2, h, d):
    """Closed-form MMD^2 of N(m1, s1^2 I), N(m2, s2^2 I) under the RBF kernel:
    E exp(-|Z|^2 / 2h^2) = (h^2 / (h^2 + t^2))^(d/2) exp(-|mu|^2 / 2(h^2 + t^2)), Z ~ N(mu, t^2 I)."""

    def e(mu2, t2):
        return (h**2 / (h**2 + t2)) ** (d / 2) * math.exp(-mu2 / (2 * (h**2 + t2)))

    delta2 = sum((a - b) ** 2 for a, b in zip(m1, m2))
    return e(0.0, 2 * s1**2) + e(0.0, 2 * s2**2) - 2 * e(delta2, s1**2 + s2**2)


def test_mmd_rbf_against_closed_form():
    n, h = 2000, 1.0
    x = _randn(n, 2, 2)
    same = mmd_rbf(x, _randn(n, 2, 3), h)
    assert abs(same) < 0.004
    shifted = mmd_rbf(x, _randn(n, 2, 4, mean=[1.0, 0.0]), h)
    assert shifted == pytest.approx(_mmd_gauss([0, 0], 1, [1, 0], 1, h, 2), abs=0.01)  # 0.102
    wider = mmd_rbf(x, _randn(n, 2, 5, std=2.0), 0.5)
    assert wider == pytest.approx(_mmd_gauss([0, 0], 1, [0, 0], 2, 0.5, 2), abs=0.01)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_rbf(x, x, 0.0)


def test_sliced_wasserstein_against_closed_form():
    # theta.x ~ N(theta.m1, s1^2): W2^2 = (theta.delta)^2 + (s1 - s2)^2, E(theta.delta)^2 = |delta|^2/d
    d, n = 3, 5000
    x = _randn(n, d, 6, std=1.0)
    y = _randn(n, d, 7, mean=[3.0, 0.0, 0.0], std=2.0)
    exact = math.sqrt(9.0 / d + 1.0)  # = 2
    sw = sliced_wasserstein(x, y, 400, torch.Generator().manual_seed(0))
    assert sw == pytest.approx(exact, rel=0.03)
    assert sliced_wasserstein(x, x, 10, torch.Generator().manual_seed(0)) == 0.0
    assert sw == sliced_wasserstein(x, y, 400, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(x, y[:10], 10, torch.Generator())


def test_noise_floor_of_a_mean_matches_its_closed_form():
    # |mean of n standard normals| is half-normal with scale 1/sqrt(n):
    # E = sqrt(2/pi)/sqrt(n), sd = sqrt(1 - 2/pi)/sqrt(n); 400 draws: standard error 0.003
    n = 100
    floor = noise_floor(lambda k: _randn(n, 1, 1000 + k).mean().abs().item(), 400)
    assert floor.mean == pytest.approx(math.sqrt(2 / math.pi / n), abs=0.01)
    assert floor.sd == pytest.approx(math.sqrt((1 - 2 / math.pi) / n), abs=0.01)
    assert list(floor.values.index) == list(range(400))


def test_noise_floor_calls_each_key_once_in_order():
    gen = torch.Generator().manual_seed(0)
    floor = noise_floor(lambda k: torch.randn(1, generator=gen).item() + k, [10, 20, 30])
    # one shared generator drawn in turn: the same numbers as three sequential draws
    expected = torch.randn(3, generator=torch.Generator().manual_seed(0)).double().numpy()
    expected += [10, 20, 30]
    np.testing.assert_array_equal(floor.values.to_numpy(), expected)
    assert list(floor.values.index) == [10, 20, 30]
    assert floor.mean == float(np.mean(expected))
    assert floor.sd == float(np.std(expected, ddof=1))  # n - 1, not np.std's default n
    assert math.isnan(noise_floor(lambda k: 1.0, 1).sd)  # one draw: no spread


def test_noise_floor_of_several_scores_is_a_table():
    floor = noise_floor(lambda s: {"a": float(s), "b": 2 * s}, [1, 2, 4])
    assert list(floor.values.columns) == ["a", "b"]
    assert floor.mean["a"] == pytest.approx(7 / 3) and floor.mean["b"] == pytest.approx(14 / 3)
    assert floor.sd["b"] == pytest.approx(2 * np.std([1, 2, 4], ddof=1))
    with pytest.raises(ValueError, match="at least one draw"):
        noise_floor(lambda k: 0.0, 0)
    with pytest.raises(ValueError, match="mapping for every draw"):
        noise_floor(lambda k: {"a": 1.0} if k else 1.0, 2)


# -- pointwise measures ------------------------------------------------------------------------


def test_psnr_hand_computed():
    x = torch.zeros(2, 1, 4, 4, dtype=F64)
    ref = torch.tensor([0.1, 0.2], dtype=F64)[:, None, None, None].expand(2, 1, 4, 4)
    # MSE 0.01 and 0.04, range 2: 10 log10(4 / 0.01) = 26.0206, 10 log10(100) = 20
    assert psnr(x, ref).tolist() == pytest.approx([10 * math.log10(400), 20.0], abs=1e-9)
    assert psnr(x, ref, data_range=1.0)[1].item() == pytest.approx(10 * math.log10(25))


def test_fraction_unexplained_variance_hand_computed():
    target = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    pred = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=F64)
    # squared errors 1, 1; |target|^2 = 1, 4; centred target rows (.5, -1), (-.5, 1)
    assert fraction_unexplained_variance(pred, target).item() == pytest.approx(2 / 5)
    assert fraction_unexplained_variance(pred, target, "mean").item() == pytest.approx(0.625)
    assert fraction_unexplained_variance(pred, target, "none").tolist() == [1.0, 0.25]
    assert fraction_unexplained_variance(pred, target, centered=True).item() == pytest.approx(0.8)
    assert fraction_unexplained_variance(target, target).item() == 0.0
    with pytest.raises(ValueError, match="reduction"):
        fraction_unexplained_variance(pred, target, "max")


# -- precision / recall ------------------------------------------------------------------------


def test_precision_recall_hand_computed():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0], [3.9], [-1.5]])
    # real radii (k=1) are all 1: 0.5 and 3.9 are covered, 10 and -1.5 are not;
    # fake radii are 2, 6.1, 3.4, 2: every real point is within 2 of 0.5 or 0.9 of 3.9
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)


def test_precision_recall_mode_collapse_and_shift():
    real = torch.cat([_randn(500, 2, 8), _randn(500, 2, 9, mean=[10.0, 0.0])])
    collapsed = _randn(1000, 2, 10)  # only the first mode
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and 0.4 < r < 0.6
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)


def test_frechet_distance_features_closed_form():
    # FD of N(m1, diag a), N(m2, diag b) = |m1 - m2|^2 + sum (sqrt a - sqrt b)^2 = 1 + 2.25
    g = torch.Generator().manual_seed(11)
    sa, sb = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([2.0, 1.0, 1.0, 1.0])
    fa = torch.randn(20000, 4, generator=g, dtype=F64) * sa
    fb = torch.randn(20000, 4, generator=g, dtype=F64) * sb + torch.tensor([1.0, 0, 0, 0])
    assert frechet_distance_features(fa, fb) == pytest.approx(3.25, rel=0.03)


def test_frechet_distance_matches_the_matrix_square_root_form():
    # on well-conditioned covariances the eigen form equals scipy's sqrtm of S_a S_b
    from scipy.linalg import sqrtm

    g = torch.Generator().manual_seed(13)
    fa = torch.randn(3000, 6, generator=g, dtype=F64) @ torch.randn(6, 6, generator=g, dtype=F64)
    fb = torch.randn(3000, 6, generator=g, dtype=F64) + 0.3
    a, b = fa.numpy(), fb.numpy()
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * sqrtm(sa @ sb).real)
    assert frechet_distance_features(fa, fb) == pytest.approx(ref, rel=1e-9)


def test_frechet_distance_with_dead_features_adds_only_their_mean_gap():
    # two features constant in both sets (dead ReLU units): one equal (0, 0), one at 0 vs 2;
    # the FD is the live features' FD plus 2^2, with no singular-matrix warning; a feature
    # dead in one set only (singular S_a S_b) is exact too
    g = torch.Generator().manual_seed(12)
    fa = torch.randn(5000, 3, generator=g, dtype=F64)
    fb = torch.randn(5000, 3, generator=g, dtype=F64) * 2.0
    live = frechet_distance_features(fa, fb)
    pad_a = torch.cat([fa, torch.zeros(5000, 2, dtype=F64)], 1)
    pad_b = torch.cat([fb, torch.zeros(5000, 1, dtype=F64), torch.full((5000, 1), 2.0, dtype=F64)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        assert frechet_distance_features(pad_a, pad_b) == pytest.approx(live + 4.0, rel=1e-9)
    half_dead = torch.cat([fa, torch.zeros(5000, 1, dtype=F64)], 1)
    other = torch.cat([fb, 3.0 * torch.randn(5000, 1, generator=g, dtype=F64)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        assert frechet_distance_features(half_dead, other) == pytest.approx(live + other[:, -1].var().item(), rel=1e-3)  # up to sample cross-covariances


# -- digit classifier, FD-digits, IS-digits -------------------------------------------------------


@pytest.fixture(scope="module")
def digits_split():
    x, y = digits8x8()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    return x[perm[:1400]], y[perm[:1400]], x[perm[1400:]], y[perm[1400:]]


@pytest.fixture(scope="module")
def trained(digits_split):
    xtr, ytr, _, _ = digits_split
    t = time.process_time()  # CPU time: robust to other processes loading the machine
    model = train_digit_classifier(xtr, ytr, 300, torch.Generator().manual_seed(0))
    return model, time.process_time() - t


def test_digit_classifier_accuracy_and_time(trained, digits_split):
    model, seconds = trained
    _, _, xte, yte = digits_split
    acc = classifier_accuracy(model, xte, yte)
    print(f"held-out accuracy {acc:.3f}, training {seconds:.1f} s CPU")
    assert acc > 0.9
    assert seconds < 20


def test_digit_classifier_deterministic(digits_split):
    xtr, ytr, _, _ = digits_split
    a, b, c = (
        train_digit_classifier(xtr, ytr, 5, torch.Generator().manual_seed(s)).state_dict()
        for s in (1, 1, 2)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])
    with pytest.raises(ValueError, match="steps"):
        train_digit_classifier(xtr, ytr, 0, torch.Generator())


def test_fd_digits_real_vs_noise(trained):
    model, _ = trained
    x, _ = digits8x8()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    half = x.shape[0] // 2
    a, b = x[perm[:half]], x[perm[half : 2 * half]]
    noise = torch.rand(a.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    real_real = frechet_distance_digits(a, b, model)
    real_noise = frechet_distance_digits(a, noise, model)
    print(f"FD-digits real/real {real_real:.2f}, real/noise {real_noise:.2f}")
    assert real_noise > 20 * real_real


def test_classifier_score(trained, digits_split):
    model, _ = trained
    _, _, xte, _ = digits_split
    real = classifier_score(xte, model)
    print(f"IS-digits of held-out real digits {real:.2f}")
    assert 8.5 < real <= 10.0
    assert classifier_score(xte[:1].expand(50, -1, -1, -1), model) == pytest.approx(1.0, abs=1e-9)


# -- Inception (never downloaded) -------------------------------------------------------------------


def test_inception_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("GMDIFF_INCEPTION_DIR", str(tmp_path))
    x = torch.zeros(4, 3, 8, 8)
    with pytest.raises(FileNotFoundError, match="nvlabs-fi-cdn.*GMDIFF_INCEPTION_DIR"):
        fid_inception(x, x)


class _FakeLayers(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(2, 3))  # (B, 3): the normalised channel means
        return torch.cat([m, x[:, :, 0, 0], x[:, :, 298, 298]], 1).repeat(1, 228)[:, :2048]


class _FakeInception(nn.Module):
    """Stands in for the torchscript file: same attribute ``layers`` that clean-fid uses."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def test_inception_feature_pipeline_with_stand_in_weights(tmp_path):
    torch.jit.save(torch.jit.script(_FakeInception()), str(tmp_path / INCEPTION_FILE))
    # constant grey images: quantised to round((v + 1) * 127.5), resized (still constant),
    # then normalised by clean-fid as (u - 128) / 128
    v = torch.tensor([-1.0, 0.0, 0.5])
    images = v[:, None, None, None].expand(3, 1, 8, 8)
    feats = inception_features(images, tmp_path, batch_size=2)
    u = torch.round((v + 1) * 127.5)
    assert feats.shape == (3, 2048)
    assert torch.allclose(feats[:, :9], ((u - 128) / 128)[:, None].expand(3, 9), atol=1e-5)


def test_knn_chunking_matches_one_block():
    from gmdiff.metrics import _coverage, _knn_radii

    a, b = _randn(300, 3, 12), _randn(200, 3, 13, mean=[0.5, 0.0, 0.0])
    radii = _knn_radii(a, 3)
    assert torch.allclose(_knn_radii(a, 3, chunk=64), radii, rtol=1e-12, atol=0)
    assert _coverage(b, a, radii, chunk=64) == _coverage(b, a, radii)
