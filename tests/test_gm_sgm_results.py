"""The GM-SGM tables' seed summaries and the long profile's stored results."""

from __future__ import annotations

import pandas as pd
import pytest

from gmdiff import results, runs, stats
from gmdiff.papers import gm_sgm as G
from gmdiff.study import Study


def _per_seed() -> pd.DataFrame:
    fd = {("SGM", 0): 60.0, ("SGM", 1): 57.0, ("SGM", 2): 42.0,
          ("GM-SGM", 0): 80.0, ("GM-SGM", 1): 79.0, ("GM-SGM", 2): 61.0}  # fmt: skip
    return pd.DataFrame(
        [{"model": m, "seed": s, "iterations": 50, "FD": v} for (m, s), v in fd.items()]
    )


def test_seed_summary_is_the_paired_interval_of_each_model_against_the_baseline():
    per_seed = _per_seed()
    mean_ci, paired = G.seed_summary(per_seed, "FD-digits")
    assert mean_ci.loc["SGM", "50 iterations"] == stats.fmt_mean_ci([60.0, 57.0, 42.0])
    p = stats.paired([80.0, 79.0, 61.0], [60.0, 57.0, 42.0])
    row = paired.loc[("GM-SGM", 50)]
    assert row["direction"] == p["direction"] == "worse"
    assert row["FD-digits difference [95 % interval]"] == stats.fmt_interval(
        p["difference"], p["low"], p["high"]
    )
    assert list(paired.index.get_level_values(0)) == [
        "GM-SGM"
    ]  # the baseline is not compared with itself


def test_results_round_trip_and_the_long_profile_adds_only_seeds_and_the_control(tmp_path):
    path = tmp_path / "long" / "x.json"
    results.save_results(path, {"profile": "long", "seeds": [0, 1, 2]}, per_seed=_per_seed())
    meta, tables = results.load_results(path)
    assert meta == {"profile": "long", "seeds": [0, 1, 2]}
    pd.testing.assert_frame_equal(tables["per_seed"], _per_seed())
    ci, long = (Study.open("gm_sgm_tables", p).sizes for p in ("ci", "long"))
    assert long["toy"] == ci["toy"]
    assert {k for k in ci["images"] if ci["images"][k] != long["images"][k]} == {"seeds", "longer"}
    with pytest.raises(ValueError, match="profile must be one of"):
        Study.open("gs_far_field", "long")


def test_adequacy_table_names_and_rounds_the_columns():
    rows = [{"model": "SGM", "seed": 0, "steps": 10, "ema_init_share": 0.0, "final_loss": 20.84,
             "final/best": 1.0123, "last-half drop": 0.0812}]  # fmt: skip
    t = runs.adequacy_table(rows, ["model", "seed", "steps"])
    assert list(t.columns) == ["EMA share of init", "final loss", "final/best", "last-half drop"]
    assert t.iloc[0].tolist() == [0.0, 20.8, 1.01, 0.08]


def test_adequacy_table_shows_a_bank_by_its_worst_member():
    rows = [{"model": m, "seed": s, "steps": 10, "ema_init_share": e, "final_loss": 1.0,
             "final/best": fb, "last-half drop": d}
            for m, s, e, fb, d in [("SGM", 0, 0.0, 1.0, 0.02), ("SGM", 1, 0.004, 1.1, -0.01),
                                   ("GM-SGM", 0, 0.0, 1.0, 0.3)]]  # fmt: skip
    t = runs.adequacy_table(rows, ["model", "seed"], worst_over="seed")
    assert list(t.index) == ["SGM", "GM-SGM"]
    assert "final loss" not in " ".join(t.columns)
    assert t.loc["SGM"].tolist() == [10, 0.004, 1.1, 0.02]
    assert t.loc["GM-SGM", "last-half drop (max over seeds)"] == 0.3
    single = runs.adequacy_table([rows[1] | {"last-half drop": -0.001}], ["model", "seed"])
    assert "-0.0" not in single.to_string()


def test_stored_seeds_concatenate_each_seed_and_name_the_command_when_one_is_missing(tmp_path):
    t = pd.DataFrame({"kernel": ["DDPM", "SMD"], "KL": [1.0, 2.0]})
    for s in (1, 2):
        results.save_results(results.seed_file("ch", s, tmp_path), results.run_meta("ci"), kl=t.assign(KL=t["KL"] * s))
    got = results.stored_seeds("ch", [1, 2], tmp_path)["kl"]
    assert list(got["seed"]) == [1, 1, 2, 2] and list(got["KL"]) == [1.0, 2.0, 2.0, 4.0]
    with pytest.raises(FileNotFoundError, match=r"ch-seed3\.json is missing: .* -p seed 3"):
        results.stored_seeds("ch", [1, 3], tmp_path)
