"""Per-example draws of the global batch: DDP ranks' rows tile one process's draws, for
every draw site of the losses, noise models, nets and augmentation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gmdiff import nets, noise
from gmdiff.data import random_hflip
from gmdiff.global_batch import Dropout, Rows, dropout, local_rows, per_example
from gmdiff.losses import dsm_loss, edm_loss, eps_loss, gm_ddpm_loss, smd_loss
from gmdiff.schedules import DiscreteVP
from gmdiff.train import _warn_rank_dropout

G = 8  # the global batch, split over 2 "ranks" of 4 rows


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def on_ranks(fn, world: int = 2) -> list:
    """fn() under each rank's rows of the global batch of G, each with the same seeds."""
    b = G // world
    outs = []
    for r in range(world):
        torch.manual_seed(1)
        with local_rows(r * b, b, G):
            outs.append(fn(r * b, b))
    return outs


def test_ranks_rows_tile_the_global_draw():
    draw = lambda n: torch.randn(n, 3, generator=gen())
    whole = draw(G)
    halves = on_ranks(lambda s, b: per_example(draw, b))
    assert torch.equal(torch.cat(halves), whole)
    with local_rows(0, G, G):  # one process: the plain draw
        assert torch.equal(per_example(draw, G), whole)
    assert not torch.equal(draw(4), whole[4:])  # without the rows, rank 1 would repeat rank 0


def test_several_draws_per_example_keep_the_repeat_layout():
    """n = m * b rows, row k b + i = draw k of example i (SMD's n_eta latents)."""
    draw = lambda n: torch.randn(n, generator=gen())
    whole = draw(2 * G).reshape(2, G)
    halves = on_ranks(lambda s, b: per_example(draw, 2 * b).reshape(2, b))
    assert torch.equal(torch.cat(halves, 1), whole)
    with local_rows(0, 4, G), pytest.raises(RuntimeError, match="whole number"):
        per_example(draw, 6)


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match="do not lie"):
        Rows(6, 4, G)
    assert Rows(4, 4, G).sharded and not Rows(0, G, G).sharded


def test_dropout_is_torchs_cpu_dropout_and_tiles():
    x = torch.randn(G, 5, generator=gen(2))
    torch.manual_seed(3)
    plain = F.dropout(x, 0.3, True)
    torch.manual_seed(3)
    with local_rows(0, G, G):
        assert torch.equal(dropout(x, 0.3, True), plain)  # the same masks: CPU runs unchanged
    torch.manual_seed(3)
    halves = on_ranks(lambda s, b: (torch.manual_seed(3), dropout(x[s : s + b], 0.3, True))[1])
    assert torch.equal(torch.cat(halves), plain)
    with local_rows(0, 4, G):
        assert torch.equal(dropout(x[:4], 0.3, False), x[:4])
        assert torch.equal(dropout(x[:4], 1.0, True), torch.zeros(4, 5))
    layer = Dropout(0.2)
    assert repr(layer) == repr(nn.Dropout(0.2)) and layer.state_dict() == {}


VP = DiscreteVP.linear(T=50)
SMD = nets.SMDConfig(
    base=nets.MLPConfig(dim=2, width=16, depth=1, emb_dim=8),
    latent_dim=4,
    latent_width=8,
    latent_depth=1,
    time_dim=8,
)
GMD = nets.GMDDPMConfig(base=nets.MLPConfig(dim=2, width=16, depth=1, emb_dim=8))


def half(x, *args, **kw):
    return 0.5 * x


def losses():
    """(name, loss(x0, generator)) for every draw site a training loss reaches."""
    torch.manual_seed(0)
    smd, gmd = nets.SMDNet(SMD), nets.GMDDPMNet(GMD)
    per_pixel = noise.OffsetMixtureNoise(0.3, per_coordinate=True)
    return {
        "edm": lambda x, g: edm_loss(half, x, generator=g),
        "dsm, continuous scales": lambda x, g: dsm_loss(
            half, x, generator=g, noise=noise.ContinuousScaleNoise(1.0, 2.0)
        ),
        "eps, mixture components": lambda x, g: eps_loss(
            half, x, VP, generator=g, noise=noise.gm_sgm_noise(2.0, alternate=False)
        ),
        "gm_ddpm, offsets per pixel": lambda x, g: gm_ddpm_loss(
            gmd, x, VP, generator=g, classifier_weight=0.0, noise=per_pixel
        ),
        "smd, 2 latents per example": lambda x, g: smd_loss(smd, x, VP, generator=g, n_eta=2),
        "gm_ddpm, paths": lambda x, g: gm_ddpm_loss(gmd, x, VP, generator=g),
    }


@pytest.mark.parametrize("name", list(losses()))
def test_two_ranks_mean_loss_is_the_global_batch_loss(name):
    """Each loss's mean over its rows is linear in the per-example terms, so the ranks'
    mean equals one process's loss exactly when every draw is the global batch's; with
    the draws made per rank (no rows: the seeding before DDP sharding) it is not."""
    draw = losses()[name]

    def loss(x, seed=9):
        with torch.no_grad():
            return float(draw(x, gen(seed))["loss"])

    x0 = torch.randn(G, 2, generator=gen(5))
    whole = loss(x0)
    halves = on_ranks(lambda s, b: loss(x0[s : s + b]))
    assert sum(halves) / 2 == pytest.approx(whole, rel=1e-6)
    per_rank = [loss(x0[s : s + 4]) for s in (0, 4)]
    assert sum(per_rank) / 2 != pytest.approx(whole, rel=1e-3)


def test_flips_and_sampler_draws_tile():
    images = torch.randn(G, 1, 2, 2, generator=gen(4))
    whole = random_hflip(images, gen(6))
    halves = on_ranks(lambda s, b: random_hflip(images[s : s + b], gen(6)))
    assert torch.equal(torch.cat(halves), whole)


def test_gamma_noise_is_refused_under_ddp():
    x0 = torch.randn(4, 2)
    with local_rows(0, 4, G), pytest.raises(ValueError, match="train it in one process"):
        noise.GammaNoise(0.1).sample(x0, gen(), 1.0, 0.5)
    with local_rows(0, 4, 4):
        assert noise.GammaNoise(0.1).sample(x0, gen(), 1.0, 0.5).shape == x0.shape


def test_torchs_dropout_layers_are_named_in_a_warning():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1), Dropout(0.1), nn.Dropout(0.0))
    with pytest.warns(UserWarning, match=r"dropout layers \(1\) draw their masks per DDP rank"):
        _warn_rank_dropout(model)
