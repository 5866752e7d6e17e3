"""gmdiff.stats: the paired interval, the verdict rule and the noise-level rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gmdiff import ledger, stats


def test_paired_is_the_t_interval_of_the_per_seed_differences():
    a, b = [181.0, 187.0, 160.0], [218.0, 252.0, 200.0]
    d = np.subtract(a, b)
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)  # by hand
    out = stats.paired(a, b)
    assert out["difference"] == pytest.approx(d.mean())
    assert (out["low"], out["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert out["direction"] == "better"  # lower is better and the interval is below 0
    assert stats.paired(b, a)["direction"] == "worse"
    assert stats.paired([1.0, 2.0, 3.0], [2.0, 1.0, 3.5])["direction"] == "tied"
    assert stats.paired(b, a, lower_is_better=False)["direction"] == "better"
    with pytest.raises(ValueError, match="one per seed"):
        stats.paired([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="two seeds"):
        stats.paired([1.0], [2.0])


def test_direction_words_are_the_only_ones():
    words = {stats.direction(lo, hi) for lo, hi in [(-2, -1), (1, 2), (-1, 1), (0, 0)]}
    assert words == set(stats.DIRECTIONS)
    with pytest.raises(ValueError):
        stats.direction(1.0, -1.0)


@pytest.mark.parametrize(
    ("half", "decimals"),
    [
        (94.7, -1),
        (15.0, 0),
        (35.6, -1),
        (0.025, 3),
        (0.0354, 3),
        (0.0356, 2),
        (1.0, 1),
        (999.0, -2),
    ],
)
def test_decimals_follow_the_pdg_rule(half, decimals):
    assert stats.decimals(half) == decimals


def test_a_number_finer_than_its_noise_is_not_printed():
    # the planted line of the issue: "+1164.3 [+1069.6, +1259.0]"
    assert stats.fmt_interval(1164.3, 1069.6, 1259.0) == "+1160 [+1070, +1260]"
    assert stats.fmt(0.106, 0.025) == "0.106"
    assert stats.fmt(-0.0004, 0.025, signed=True) == "+0.000"  # no "-0"
    assert stats.fmt_mean_ci([181.0, 187.0, 190.0]) == "186 ± 11"
    assert stats.fmt_mean_ci([0.0123, 0.0123, 0.0123]) == "0.0123"  # no spread: an exact value
    assert stats.fmt_mean_ci([-7.79e-16, 2e-16, 0.0]) == "0"  # an exact zero's round-off
    assert stats.fmt_mean_ci([1.10462874884, 1.10462874890, 1.10462874878]) == "1.1"  # round-off spread
    assert stats.fmt_pm(0.120, 0.036) == "0.12 ± 0.04"
    assert stats.fmt_pm(0.0348, 0.0257, signed=True) == "+0.035 ± 0.026"
    with pytest.raises(ValueError, match="half-width"):
        stats.fmt(1.0, 0.0)


def test_paired_table_matches_seeds_and_computes_each_group_by_hand():
    """Rows in any order are paired by seed; each group's row is :func:`stats.paired` of
    that group's differences, printed at its noise level."""
    a = {0: 1.0, 1: 2.0, 2: 4.0}
    b = {0: 0.5, 1: 0.4, 2: 0.3}
    rows = [{"T": T, "model": m, "seed": s, "v": v + T}
            for T in (5, 10) for m, d in (("A", a), ("B", b)) for s, v in d.items()]  # fmt: skip
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # shuffled
    table = stats.paired_table(frame, "v", "model", [("A", "B")], by=["T"]).reset_index()
    ref = stats.paired([1.0, 2.0, 4.0], [0.5, 0.4, 0.3])
    assert list(table["T"]) == [5, 10] and set(table["seeds"]) == {3}
    assert set(table["comparison"]) == {"A - B"}
    expected = stats.fmt_interval(ref["difference"], ref["low"], ref["high"])
    assert list(table["difference [95 % CI]"]) == [expected, expected]
    assert list(table["direction"]) == [ref["direction"]] * 2 == ["tied"] * 2
    with pytest.raises(ValueError, match="every seed"):
        stats.paired_table(frame.iloc[1:], "v", "model", [("A", "B")], by=["T"])


def test_mean_ci_table_is_the_t_interval_per_group():
    frame = pd.DataFrame({"g": ["x"] * 3 + ["y"] * 3, "v": [1.0, 2.0, 3.0, 10.0, 10.5, 11.0]})
    table = stats.mean_ci_table(frame, "v", ["g"])
    assert table.loc["x"] == stats.fmt_mean_ci([1.0, 2.0, 3.0]) == "2.0 ± 2.5"
    assert table.loc["y"] == stats.fmt_mean_ci([10.0, 10.5, 11.0])


def test_too_fine_finds_intervals_printed_finer_than_their_noise():
    text = (
        "FD-digits +1164.3 [+1069.6, +1259.0] at NFE 10; +1160 [+1070, +1260] is right, "
        "and so are 0.106 [0.081, 0.131] and −0.0031 [−0.0052, −0.0010]; 0.1063 [0.0812, "
        "0.1311] is not, nor is +1164 [+1070, +1260] (tens); Eq. 3 [0, 9] and "
        "5 [7, 9] (no mean inside) are skipped"
    )
    # half-widths by hand: 94.7 -> one digit of tens; 0.02495 -> 0.025, three decimals
    assert stats.too_fine(text) == [
        ("+1164.3 [+1069.6, +1259.0]", "+1160 [+1070, +1260]"),
        ("0.1063 [0.0812, 0.1311]", "0.106 [0.081, 0.131]"),
        ("+1164 [+1070, +1260]", "+1160 [+1070, +1260]"),
    ]
    # half-width 0.04 (leading digits 400: one significant digit) -> two decimals
    assert stats.too_fine("the gap 12.34 [12.30, 12.38]") == []
    # at the rule's edge (a half-width of 0.00354 keeps two digits, 0.0036 one) the printed
    # digits cannot tell: printed from the unrounded interval, it passes
    assert stats.too_fine("-0.0019 [-0.0055, +0.0016]") == []
    assert stats.too_fine("the gap 12.341 [12.301, 12.381]") == [
        ("12.341 [12.301, 12.381]", "12.34 [12.30, 12.38]")
    ]


def test_too_fine_reads_mean_plus_minus_error_and_exponents():
    """ "mean ± error" follows the same rule, the error its own half-width; a number in
    exponent form shows the decimals of its value (1.2e-02: three)."""
    text = (
        "SW2 0.106 ± 0.025 and 2.951 ± 0.157 (0.157: two digits, 0.16); gap +6.3e-04 ± 8e-04"
        " and +1.2e-02 ± 6e-03; 0.1063 ± 0.0251; a count 5 ± 0"
    )
    # 0.025 (leading digits 250): two significant digits, three decimals, so 0.106 is right
    assert stats.too_fine(text) == [
        ("2.951 ± 0.157", "2.95 ± 0.16"),
        ("+6.3e-04 ± 8e-04", "+0.0006 ± 0.0008"),
        ("0.1063 ± 0.0251", "0.106 ± 0.025"),
    ]


def test_ledger_reasons_at_their_noise_level_report():
    """A report, not a gate: the ledger's reasons are scanned and what is printed finer
    than its interval allows is listed in the test output (a warning); the assertion is on
    a planted interval, which must be among the findings."""
    claims = ledger.load()
    texts = {f"{c.id} {f}": getattr(c, f) for c in claims.values() for f in ("claim", "reason")}
    first = next(iter(texts))
    texts[first] += " (planted: +1164.3 [+1069.6, +1259.0])"
    found = {where: stats.too_fine(text) for where, text in texts.items()}
    assert ("+1164.3 [+1069.6, +1259.0]", "+1160 [+1070, +1260]") in found[first]
    real = [(w, hit) for w, hits in found.items() for hit in hits if "1164.3" not in hit[0]]
    if real:
        lines = "\n".join(f"  {w}: {printed} -> {rule}" for w, (printed, rule) in real)
        warnings.warn(f"ledger numbers finer than their noise:\n{lines}", stacklevel=1)


def test_an_interval_bound_that_rounds_to_zero_keeps_its_sign():
    """[-0.2, +53] contains 0 and [+0.3, +80] does not: printed at the noise level both
    bounds round to 0, and only the sign tells them apart, as the direction word does."""
    assert stats.fmt_interval(26.0, -0.2, 53.0) == "+26 [-0, +53]"
    assert stats.fmt_interval(40.0, 0.3, 80.0) == "+40 [+0, +80]"
    assert stats.direction(-0.2, 53.0) == "tied" and stats.direction(0.3, 80.0) == "worse"


def test_in_words_reads_a_paired_table_row_by_row():
    frame = pd.DataFrame({"steps": [10, 10, 10, 50, 50, 50] * 2, "seed": [0, 1, 2] * 4,
                          "model": ["A"] * 6 + ["B"] * 6,
                          "v": [5.0, 6.0, 7.0, 1.0, 2.0, 1.5] + [0.0] * 6})  # fmt: skip
    table = stats.paired_table(frame, "v", "model", [("A", "B")], by=["steps"])
    ten, fifty = (table.loc[(s, "A - B"), "difference [95 % CI]"] for s in (10, 50))
    assert stats.in_words(table, "at {steps} steps") == (
        f"{ten} (worse) at 10 steps, {fifty} (worse) at 50 steps"
    )
