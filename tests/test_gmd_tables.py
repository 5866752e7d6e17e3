"""The loops behind GM-DDPM's Tables 1-3 (gmdiff.papers.gm_ddpm, chapter gmd_tables): the
configs, the pairing of samples, the scores, the paired differences and the verdict rule,
at tiny sizes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from gmdiff import metrics, nets, runs
from gmdiff.papers import gm_ddpm as P
from gmdiff.samplers import SAMPLERS
from gmdiff.stats import fmt_interval

CI, FULL = "configs/gm_ddpm_digits.yaml", "configs/gm_ddpm_cifar10.yaml"  # the study's bases
TINY = ["train.steps=2", "train.ema_rampup=0.05", "train.batch_size=8",
        "model.overrides.base.ch=8", "model.overrides.classifier_width=8",
        "schedule.options.T=6"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return P.train_table_models(CI, [0.0, 0.2], [0, 1], TINY, cache_dir=cache)


def test_table_config_sets_lambda_and_seed():
    cfg = P.table_config(CI, 0.1, 2)
    assert cfg.model.overrides["lam"] == 0.1 and cfg.train.seed == 2
    assert cfg.data.name == "digits8x8" and cfg.model.net == "gm_ddpm_digits"
    full = P.table_config(FULL, 0.0, 0)
    assert full.data.name == "cifar10" and full.schedule.options["T"] == 1000
    with pytest.raises(FileNotFoundError, match="gm_ddpm_paper.yaml"):
        P.table_config("configs/gm_ddpm_paper.yaml", 0.2, 0)


def test_table_config_readings_of_the_means():
    """reading="shared" is the files' own (same run hash, so cached models stay); unit and
    per_pixel change the net config (per-pixel: no classifier, classifier term off)."""
    from gmdiff.config import sha

    cfgs = {r: P.table_config(CI, 0.2, 0, reading=r) for r in P.READINGS}
    assert sha(cfgs["shared"]) == sha(P.table_config(CI, 0.2, 0))
    assert len({sha(c) for c in cfgs.values()}) == 3
    for reading, cfg in cfgs.items():
        run = runs.build(cfg)
        assert run.trained.noise.direction == ("unit" if reading == "unit" else "ones")
        assert run.trained.noise.per_coordinate == (reading == "per_pixel")
        assert (run.trained.classifier is None) == (reading == "per_pixel")
        assert cfg.model.overrides["lam"] == 0.2 and cfg.train.seed == 0
    assert cfgs["per_pixel"].loss.options["classifier_weight"] == 0
    with pytest.raises(ValueError, match="reading must be one of"):
        P.table_config(CI, 0.2, 0, reading="pixel")


def test_full_profile_builds_the_paper_sized_network():
    """configs/gm_ddpm_cifar10.yaml: the DDPM CIFAR-10 U-Net (Ho et al.: 35.7M parameters)
    plus the classifier MLP on the 3,072 pixels; built on the CPU, not trained."""
    run = runs.build(P.table_config(FULL, 0.2, 0))
    eps = sum(p.numel() for p in run.trained.net.parameters())
    ddpm = sum(p.numel() for p in nets.build_net(nets.get_config("ddpm_cifar10")).parameters())
    assert eps == ddpm and abs(eps - 35.7e6) / 35.7e6 < 0.01
    clf = sum(p.numel() for p in run.trained.classifier.parameters())
    assert clf > 3072 * 256  # its first layer reads every pixel
    assert run.shape == (3, 32, 32) and run.schedule.T == 1000


def test_ddpm_strategy_is_the_library_ddpm_sampler_from_the_same_noise(tiny_models):
    """Alg. 3 of the tables' lam = 0.2 model equals samplers.ddpm from the same x_T (a
    separate path through draw_samples); Alg. 4 at lam = 0 equals it (no offsets)."""
    run = tiny_models[(0.2, 1)]
    x = P.table_samples(run, "original (Alg. 3)", 16, 1001, 3)
    ref = runs.draw_samples(run.denoiser, run.schedule, SAMPLERS["ddpm"], run.schedule.T,
                            run.shape, 16, seed=1001)  # fmt: skip
    torch.testing.assert_close(x, ref)
    base = tiny_models[(0.0, 1)]
    a3 = P.table_samples(base, "original (Alg. 3)", 16, 7, 3)
    torch.testing.assert_close(P.table_samples(base, "removal mu (Alg. 4)", 16, 7, 3), a3)
    assert (P.table_samples(run, "removal mu (Alg. 4)", 16, 7, 3) - x).abs().max() > 1e-3


def test_evaluate_tables_scores_every_run_with_paired_noise(tiny_models):
    seen = []

    def score(x):
        seen.append(x)
        return {"fd": float(x.mean()), "precision": 1.0}

    df = P.evaluate_tables(tiny_models, lambda lam: P.STRATEGY_RUNS if lam else ["DDIM"], score,
                           8, 3)  # fmt: skip
    assert len(df) == 2 * 1 + 2 * 3 and set(df.seed) == {0, 1}
    assert df.groupby("lam").size().to_dict() == {0.0: 2, 0.2: 6}
    # solver runs use the solver budget: DDIM with 3 steps, not T = 6
    run = tiny_models[(0.0, 0)]
    ddim = runs.draw_samples(run.denoiser, run.schedule, SAMPLERS["ddim"], 3, run.shape, 8,
                             seed=1000)  # fmt: skip
    torch.testing.assert_close(seen[0], ddim)


def test_image_scores_against_the_metrics():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(300, 1, 2, 2, generator=g) * 2 - 1

    def flat(x):
        return x.flatten(1)

    s = P.ImageScores(ref, flat, 50, 0)
    x = torch.rand(50, 1, 2, 2, generator=g) * 2 - 1
    out = s(x)
    assert out["fd"] == pytest.approx(metrics.frechet_distance_features(flat(x), flat(ref)))
    assert "is" not in out
    assert s(s.ref_pr.reshape(-1, 1, 2, 2))["precision"] == 1.0
    shifted = s(torch.full((50, 1, 2, 2), 5.0))  # clipped to 1: one point, off the data
    assert shifted["recall"] < 0.1


def test_image_scores_take_is_from_an_inception_score_in_the_full_configuration(tiny_models):
    """Profile full (no digit classifier): "is" is the given Inception Score of the clipped
    samples (a stand-in returning a planted value), and it fills the tables' "is" column."""
    seen = []

    def inception(x):
        seen.append(x)
        return 9.5

    ref = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    score = P.ImageScores(ref, lambda x: x.flatten(1)[:, :4], 8, 0, None, inception)
    table = P.evaluate_tables(tiny_models, lambda lam: ["DDIM"], score, 8, 2)
    assert len(table) == 4 and (table["is"] == 9.5).all()
    assert len(seen) == 4 and all(x.shape == (8, 1, 8, 8) and x.abs().max() <= 1 for x in seen)
    with pytest.raises(ValueError, match="not both"):
        P.ImageScores(ref, lambda x: x.flatten(1), 8, 0, torch.nn.Identity(), inception)


def test_paired_differences_t_interval_by_hand():
    rows = [(0.0, "A", s, 10.0) for s in range(3)] + [(0.0, "B", s, 0.0) for s in range(3)]
    rows += [(0.2, "A", s, 10.0 + d) for s, d in enumerate([1.0, 2.0, 3.0])]
    rows += [(0.2, "C", s, 5.0) for s in range(3)]
    df = pd.DataFrame(rows, columns=["lam", "run", "seed", "fd"])
    out = P.paired_differences(df, "fd", lambda r: "B" if r == "C" else r).set_index("run")
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert out.loc["A", "diff"] == pytest.approx(2.0)
    assert out.loc["A", "ci_low"] == pytest.approx(2.0 - half)
    assert out.loc["A", "ci_high"] == pytest.approx(2.0 + half)
    assert (out.loc["A", "min"], out.loc["A", "max"]) == (1.0, 3.0)
    assert out.loc["C", "diff"] == 5.0 and out.loc["C", "ci_low"] == 5.0  # against B


def test_directions_and_verdict_rule():
    assert P.direction(-2, -1) == "better" and P.direction(1, 2) == "worse"
    assert P.direction(-1, 1) == "tied" and P.direction(1, 2, lower_is_better=False) == "better"
    assert P.paper_direction(-0.38, 0.1) == "better" and P.paper_direction(0.05, 0.1) == "tied"
    assert P.verdict(["better", "tied"], ["better", "tied"]) == "reproduced at small scale"
    assert P.verdict(["better", "worse"], ["better", "better"]) == "partly"
    assert P.verdict(["tied", "tied"], ["better", "better"]) == "inconclusive"
    assert P.verdict(["worse", "tied"], ["better", "better"]) == "not reproduced"
    # a tie of the paper matched by ours does not make a partial reproduction
    assert P.verdict(["tied", "worse"], ["tied", "better"]) == "not reproduced"


def test_paper_cells_read_the_right_tables():
    assert P.paper_fid(0.2, "original (Alg. 3)") == (2.97, 3.35)
    assert P.paper_fid(1.0, "random mu (Alg. 5)") == (7.79, 3.35)
    assert P.paper_fid(0.2, "DDIM") == (5.24, 6.50)
    assert P.paper_fid(0.2, "DPM-Solver") == (5.10, 5.25)
    diffs = pd.DataFrame({"lam": [0.2, 1.0], "run": ["removal mu (Alg. 4)", "DDIM"],
                          "ci_low": [-3.0, -1.0], "ci_high": [-1.0, 2.0]})  # fmt: skip
    cells = P.claim_cells(diffs, 0.1)
    assert list(cells.ours) == ["better", "tied"]
    assert list(cells.paper) == ["better", "better"]


def test_readings_study_scores_every_reading_and_run_against_ddpm(tmp_path):
    """Every reading trains its own models (per-pixel without the classifier term) and is
    sampled with every table run and Eq. 34's variance; each pairs with a DDPM baseline."""

    def score(x):
        return {"fd": float(x.mean())}

    df = P.readings_study(CI, 0.2, [0], score, n=4, solver_steps=2, sets=TINY, cache_dir=tmp_path)
    runs = [*P.TABLE_RUNS, P.EQ34_RUN]
    assert set(df["model"]) == {f"DDPM: {r}" for r in [P.STRATEGY_RUNS[0], *P.SOLVER_RUNS]} | {
        f"{reading}: {r}" for reading in P.READINGS for r in runs
    }
    pairs = dict(P.readings_pairs(sorted(set(df["model"]))))
    assert pairs["per_pixel: DDIM"] == "DDPM: DDIM"
    assert pairs[f"unit: {P.EQ34_RUN}"] == f"DDPM: {P.STRATEGY_RUNS[0]}"
    assert len(pairs) == 3 * len(runs)
    # three readings at lam = 0.2 plus DDPM: four distinct trained models for the seed
    assert len(list((tmp_path / "runs").iterdir())) == 4
    # the readings sample differently from the same x_T
    fd = df.set_index("model")["fd"]
    assert len({fd[f"{r}: {P.STRATEGY_RUNS[2]}"] for r in P.READINGS}) == 3


def test_a_verdict_that_flips_with_the_reading_is_inconclusive():
    assert P.verdict_over_readings(["not reproduced"] * 3) == "not reproduced"
    assert (
        P.verdict_over_readings(["not reproduced", "inconclusive", "not reproduced"])
        == "inconclusive"
    )
    assert P.verdict_over_readings(["partly", "not run", "not run"]) == "partly"
    with pytest.raises(ValueError, match="no reading"):
        P.verdict_over_readings(["not run"])


# -- the readings study as the chapter shows it (a synthetic stored study, no training) -----

#: Per reading: (shift of every model's FD-digits from its DDPM baseline, per-seed noise).
PLANTED = {"shared": (50.0, [0.0, 1.0, 2.0]), "unit": (0.0, [-1.0, 1.0, 0.5]),
           "per_pixel": (-30.0, [0.0, 1.0, -1.0])}  # fmt: skip


@pytest.fixture
def stored_study(tmp_path):
    """A readings study in results/long/gmd_readings.json's format (readings_study's rows:
    lam, seed, run, the scores, model), written and read back by gmdiff.results."""
    from gmdiff import results

    base = {0: 100.0, 1: 110.0, 2: 125.0}
    rows = []
    for s, b in base.items():
        for run in [P.STRATEGY_RUNS[0], *P.SOLVER_RUNS]:
            rows.append({"lam": 0.0, "seed": s, "run": run, "fd": b + len(run),
                         "model": f"DDPM: {run}"})  # fmt: skip
        for reading, (shift, noise) in PLANTED.items():
            for run in [*P.TABLE_RUNS, P.EQ34_RUN]:
                paired = run if run in P.SOLVER_RUNS else P.STRATEGY_RUNS[0]
                rows.append({"lam": 0.2, "seed": s, "run": run,
                             "fd": b + len(paired) + shift + noise[s],
                             "model": f"{reading}: {run}"})  # fmt: skip
    path = tmp_path / "gmd_readings.json"
    results.save_results(path, {"profile": "ci", "seeds": [0, 1, 2]}, scores=pd.DataFrame(rows))
    return results.load_results(path, "ci")[1]["scores"]


def test_readings_comparison_pairs_every_reading_with_its_ddpm_baseline(stored_study):
    compared = P.readings_comparison(stored_study)
    runs_ = [*P.TABLE_RUNS, P.EQ34_RUN]
    assert len(compared) == len(P.READINGS) * len(runs_)
    assert set(zip(compared.reading, compared.run, strict=True)) == {
        (r, run) for r in P.READINGS for run in runs_
    }
    one = compared.set_index(["reading", "run"])
    assert one.loc[("unit", "DDIM"), "comparison"] == "unit: DDIM - DDPM: DDIM"
    assert one.loc[("shared", P.EQ34_RUN), "comparison"].endswith(f"- DDPM: {P.STRATEGY_RUNS[0]}")
    assert (one.loc["shared", "direction"] == "worse").all()
    assert (one.loc["unit", "direction"] == "tied").all()
    assert (one.loc["per_pixel", "direction"] == "better").all()
    assert (compared.seeds == 3).all()
    # the shared reading's difference and interval, by hand: diffs 50, 51, 52
    d = [50.0, 51.0, 52.0]
    mean, low, high = metrics.t_interval(d)
    assert one.loc[("shared", "DDIM"), "difference [95 % CI]"] == fmt_interval(mean, low, high)


def test_readings_table_is_one_cell_per_run_and_reading(stored_study):
    compared = P.readings_comparison(stored_study)
    wide = P.readings_table(compared)
    assert list(wide.columns) == list(P.READINGS)
    assert sorted(wide.index) == sorted([*P.TABLE_RUNS, P.EQ34_RUN])
    row = compared.set_index(["reading", "run"]).loc[("per_pixel", "DPM-Solver")]
    assert wide.loc["DPM-Solver", "per_pixel"] == f"{row['difference [95 % CI]']} better"
    assert wide["unit"].str.endswith(" tied").all()


def test_reading_rows_keep_the_order_asked_for(stored_study):
    compared = P.readings_comparison(stored_study)
    runs_ = list(P.SOLVER_RUNS)[::-1]
    rows = P.reading_rows(compared, "unit", runs_)
    assert list(rows.index) == runs_ and set(rows.reading) == {"unit"}
    with pytest.raises(ValueError, match="reading must be one of"):
        P.reading_rows(compared, "diagonal", runs_)
    with pytest.raises(ValueError, match="no 'unit' rows for the runs \\['Euler'\\]"):
        P.reading_rows(compared, "unit", ["DDIM", "Euler"])


def test_readings_verdicts_per_reading_and_over_readings(stored_study):
    """Table cells where the paper reports gains: ours worse under the shared reading (from
    the tables' own cells), tied along a unit vector, better per pixel: the readings
    disagree, so the claim is inconclusive; a shared-only claim keeps its one verdict."""
    compared = P.readings_comparison(stored_study)
    strategies = pd.DataFrame({"run": list(P.STRATEGY_RUNS), "ours": "worse", "paper": "better"})
    solvers = pd.DataFrame({"run": list(P.SOLVER_RUNS), "ours": "better", "paper": "better"})
    ablation = pd.DataFrame({"run": list(P.STRATEGY_RUNS) * 2, "ours": "worse",
                             "paper": ["tied"] * 3 + ["worse"] * 3})  # fmt: skip
    table = P.readings_verdicts(
        compared, {"T1": strategies, "T2": solvers, "T3": ablation}, shared_only=["T3"]
    )
    assert list(table.columns) == ["verdict (all readings)", "shared reading", "unit reading",
                                   "per_pixel reading"]  # fmt: skip
    assert table.loc["T1"].to_dict() == {
        "verdict (all readings)": "inconclusive", "shared reading": "not reproduced",
        "unit reading": "inconclusive", "per_pixel reading": "reproduced at small scale",
    }  # fmt: skip
    assert table.loc["T2", "shared reading"] == "reproduced at small scale"
    assert table.loc["T2", "verdict (all readings)"] == "inconclusive"
    assert table.loc["T3"].to_dict() == {
        "verdict (all readings)": "partly", "shared reading": "partly",
        "unit reading": "not run", "per_pixel reading": "not run",
    }  # fmt: skip
    with pytest.raises(ValueError, match="shared_only names claims not in claims"):
        P.readings_verdicts(compared, {"T1": strategies}, shared_only=["T9"])
