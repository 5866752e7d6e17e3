"""The papers' printed numbers: one format, one loader, and the papers' own arithmetic."""

from __future__ import annotations

import pytest

from gmdiff.papers import numbers

PAPERS = sorted(p.stem for p in numbers.DIR.glob("*.yaml"))


def test_every_paper_has_its_numbers():
    assert PAPERS == ["gaussian_score", "gm_ddpm", "gm_sgm", "smd"]


@pytest.mark.parametrize("paper", PAPERS)
def test_every_entry_loads_and_says_where_it_comes_from(paper):
    for name, e in numbers._load(paper).items():
        assert e.get("source"), f"{paper}.{name} has no source"
        if "rows" in e:
            df = numbers.table(paper, name)
            assert len(df) == len(e["rows"]) and all(len(r) == df.shape[1] for r in e["rows"])
        else:
            assert numbers.facts(paper, name)


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="no printed numbers for paper 'nope'"):
        numbers.table("nope", "table1")
    with pytest.raises(ValueError, match="no entry 'table9'"):
        numbers.table("gm_sgm", "table9")
    with pytest.raises(ValueError, match="use facts"):
        numbers.table("gaussian_score", "GS-6")
    with pytest.raises(ValueError, match="use table"):
        numbers.facts("gm_sgm", "table1")


def test_tables_are_fresh_copies():
    first = numbers.table("gm_sgm", "table1")
    first["extra"] = 1
    assert "extra" not in numbers.table("gm_sgm", "table1")


def test_gm_sgm_table3_repeats_table1():
    """Table 3's beta = 1 row is Table 1's SGM and its beta = 2 row Table 1's GM-SGM."""
    t1 = numbers.table("gm_sgm", "table1").set_index("iterations")
    t3 = numbers.table("gm_sgm", "table3").set_index("beta")
    for beta, column in ((1.0, "SGM"), (2.0, "GM-SGM")):
        for its in (50, 200, 250, 500):
            assert t3.loc[beta, its] == t1.loc[its, column]


def test_gm_ddpm_table3_repeats_table1():
    """Table 3 at lambda = 0 is DDPM and at lambda = 0.2 the three strategies of Table 1."""
    t1 = numbers.table("gm_ddpm", "table1").set_index("method")["CIFAR-10 FID"]
    t3 = numbers.table("gm_ddpm", "table3_cifar10").set_index("lam")
    assert (t3.loc[0.0] == t1["DDPM"]).all()
    assert t3.loc[0.2, "original"] == t1["Ours (original)"]
    assert t3.loc[0.2, "removal mu"] == t1["Ours (removal mu)"]
    assert t3.loc[0.2, "random mu"] == t1["Ours (random mu)"]


def test_smd_text_percentages_divide_by_the_smd_fid():
    """Sec. 5.1 quotes gains of 15.14% (DDPM, LSUN-Church), 16.86% (ADM), 12.47% and 11.86%
    (LDM): each is (without - with) / *with*; relative to the baseline FID they are smaller."""
    t = numbers.table("smd", "tables_1_2").set_index(["model", "data"])
    quoted = {
        ("DDPM", "LSUN-Church 64x64"): 15.14,
        ("ADM", "CIFAR-10 32x32"): 16.86,
        ("LDM", "LSUN-Church 256x256"): 12.47,
        ("LDM", "CelebA-HQ 256x256"): 11.86,
    }
    for key, pct in quoted.items():
        without, with_ = t.loc[key, "without SMD"], t.loc[key, "with SMD"]
        assert 100 * (without - with_) / with_ == pytest.approx(pct, abs=0.011)
        assert 100 * (without - with_) / without < pct - 1.0
