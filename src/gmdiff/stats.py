"""Comparisons of trained networks across seeds: one paired interval, one verdict rule,
one vocabulary, and one rule for how many digits a number with an uncertainty gets.

A trained network's metric moves from seed to seed (the seed redraws the initialisation,
the data order and the noise). Two methods trained on the same seeds are compared by their
per-seed differences: the mean difference and its 95 % Student-t interval
(:func:`gmdiff.metrics.t_interval`). The difference counts only when that interval
excludes 0; then the first method is "better" or "worse" than the second, otherwise the
two are "tied" at this number of seeds (:func:`direction`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gmdiff.metrics import t_interval

#: The words of a paired comparison, the only ones the book's tables use.
DIRECTIONS = ("better", "worse", "tied")


def direction(low: float, high: float, lower_is_better: bool = True) -> str:
    """ "better" / "worse" when the interval [low, high] of a difference (first minus
    second) excludes 0 on that side, else "tied"."""
    if low > high:
        raise ValueError(f"an interval needs low <= high, got [{low}, {high}]")
    if (high < 0) if lower_is_better else (low > 0):
        return "better"
    if (low > 0) if lower_is_better else (high < 0):
        return "worse"
    return "tied"


def paired(
    first: Sequence[float], second: Sequence[float], lower_is_better: bool = True
) -> dict[str, float | str]:
    """The per-seed differences ``first - second`` (one pair per seed, n >= 2): their mean,
    95 % t-interval (``low``, ``high``) and :func:`direction`."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired values need one per seed on both sides, got {a.shape} and {b.shape}"
        )
    mean, low, high = t_interval(a - b)
    return {"difference": mean, "low": low, "high": high,
            "direction": direction(low, high, lower_is_better)}  # fmt: skip


def decimals(half_width: float) -> int:
    """The decimals a number with this uncertainty gets (the Particle Data Group's rule):
    two significant digits of the half-width when its three leading digits are 100-354,
    one when 355-999 (e.g. 94.7 -> -1: tens; 0.025 -> 3)."""
    if not math.isfinite(half_width) or half_width <= 0:
        raise ValueError(f"a half-width must be finite and > 0, got {half_width}")
    exponent = math.floor(math.log10(half_width))
    leading = half_width / 10 ** (exponent - 2)
    return -(exponent - (1 if leading < 354.5 else 0))


def fmt(value: float, half_width: float, signed: bool = False) -> str:
    """``value`` rounded to :func:`decimals` of ``half_width`` ("+1160" for +1164.3 at a
    half-width of 94.7)."""
    d = decimals(half_width)
    rounded = round(value, d) + 0.0  # + 0.0: no "-0"
    return f"{rounded:{'+' if signed else ''}.{max(d, 0)}f}"


def fmt_pm(mean: float, error: float, signed: bool = False) -> str:
    """ "mean ± error", both at :func:`decimals` of ``error`` (a half-width or a standard
    error), e.g. "0.12 ± 0.04" for 0.120 ± 0.036."""
    return f"{fmt(mean, error, signed)} ± {fmt(error, error)}"


def fmt_interval(mean: float, low: float, high: float, signed: bool = True) -> str:
    """ "mean [low, high]" at the interval's noise level (:func:`fmt`), e.g.
    "+1160 [+1070, +1260]". A bound that rounds to zero keeps its sign ("[-0, +53]":
    the interval contains 0; "[+0, +80]": it does not), as the direction word reads it."""
    half = max(high - mean, mean - low)

    def bound(v: float) -> str:
        text = fmt(v, half, signed)
        return "-" + text.lstrip("+") if v < 0 and float(text) == 0 else text

    return f"{fmt(mean, half, signed)} [{bound(low)}, {bound(high)}]"


#: A printed number: sign (ASCII or Unicode minus), digits, optional decimals and exponent.
_NUMBER = r"[+\-\u2212]?\d+(?:\.\d+)?(?:e[+\-\u2212]?\d+)?"
#: "mean [low, high]", the mean right before the bracket (not the end of another token).
INTERVAL_RE = re.compile(rf"(?<![\w.^])({_NUMBER})\s*\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
#: "mean ± error" (the error a half-width or a standard error: the rule is the same).
PLUS_MINUS_RE = re.compile(rf"(?<![\w.^])({_NUMBER})\s*(?:±|\+/-|\\pm)\s*({_NUMBER})(?![\w.])")


def _printed_decimals(text: str) -> int:
    """The decimal places a printed number shows ("1.2e-02": 3)."""
    mantissa, _, exponent = text.lower().partition("e")
    return len(mantissa.partition(".")[2]) - int(exponent.replace("\u2212", "-") or 0)


def _value(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def _finer(printed: Sequence[str], half_width: float) -> bool:
    """Whether any of the ``printed`` numbers shows digits below :func:`decimals` of
    ``half_width``: more decimals, or (at tens or coarser) non-zero digits below that place."""
    d = decimals(half_width)
    if any(_printed_decimals(p) > max(d, 0) for p in printed):
        return True
    return d < 0 and any(round(_value(p)) % 10**-d for p in printed)


def too_fine(text: str) -> list[tuple[str, str]]:
    """Every "mean [low, high]" and "mean ± error" in ``text`` printed finer than its
    noise level, with the form the rule gives it (:func:`fmt_interval`; "mean ± error" with
    both at :func:`decimals` of the error): a number has more decimals than
    :func:`decimals` of the half-width allows, or (at tens or coarser) non-zero digits
    below that place. The half-width read from printed numbers is known to a printed unit
    only, so a number passes when the smallest half-width its digits allow would print it
    so (the rule was applied to the unrounded one). A bracket that does not hold its mean
    (low <= mean <= high, low < high) is not an interval, and an error of 0 is no
    uncertainty: both are skipped."""
    found = []
    for m in INTERVAL_RE.finditer(text):
        mean, low, high = (_value(g) for g in m.groups())
        if not low <= mean <= high or low == high:
            continue
        unit = 10.0 ** -max(_printed_decimals(g) for g in m.groups())
        half = max(high - mean, mean - low)
        if _finer(m.groups(), max(half - unit, half / 2)):
            signed = m.group(1)[0] in "+-\u2212"
            found.append((m.group(0), fmt_interval(mean, low, high, signed=signed)))
    for m in PLUS_MINUS_RE.finditer(text):
        mean, error = _value(m.group(1)), abs(_value(m.group(2)))
        unit = 10.0 ** -_printed_decimals(m.group(2))
        if error > 0 and _finer(m.groups(), max(error - unit / 2, error / 2)):
            signed = m.group(1)[0] in "+-\u2212"
            found.append((m.group(0), fmt_pm(mean, error, signed)))
    return sorted(found, key=lambda hit: text.index(hit[0]))


def fmt_mean_ci(values: Sequence[float]) -> str:
    """ "mean ± half-width" of the 95 % t-interval over seeds, at its noise level; values
    that vary over the seeds by round-off only (a half-width under 1e-9 of max(1, |mean|):
    an exact quantity) print alone, to three digits, and a mean within 1e-9 of 0 prints
    as 0 (an exact zero's round-off, "-7.79e-16", says nothing)."""
    mean, _, high = t_interval(values)
    if high - mean > 1e-9 * max(1.0, abs(mean)):
        return fmt_pm(mean, high - mean)
    return "0" if abs(mean) < 1e-9 else f"{mean:.3g}"


def paired_table(
    per_seed: pd.DataFrame,
    value: str,
    column: str,
    pairs: Sequence[tuple[str, str]],
    by: Sequence[str] = (),
    lower_is_better: bool = True,
) -> pd.DataFrame:
    """Paired comparisons over seeds as a table: for each group of ``by`` and each
    (first, second) of ``pairs``, the per-seed differences of ``value`` between the rows
    whose ``column`` is ``first`` and ``second``, matched by ``seed`` (:func:`paired`).
    One row each, indexed by the ``by`` keys and the comparison: the number of seeds, the
    mean difference with its 95 % interval at the interval's noise level, and the
    direction word (with one seed: its difference, no interval, "one seed")."""
    rows = []
    groups = per_seed.groupby(list(by)) if by else [((), per_seed)]
    for key, group in groups:
        wide = group.pivot_table(index="seed", columns=column, values=value)
        for first, second in pairs:
            both = wide[[first, second]]
            if both.isna().to_numpy().any():
                raise ValueError(f"{first!r} and {second!r} need a {value} for every seed")
            if len(both) < 2:
                text, word = f"{float(both[first].iloc[0] - both[second].iloc[0]):+.3g}", "one seed"
            else:
                r = paired(both[first], both[second], lower_is_better)
                text = fmt_interval(r["difference"], r["low"], r["high"])
                word = r["direction"]
            rows.append(
                dict(zip(by, key, strict=True))
                | {
                    "comparison": f"{first} - {second}",
                    "seeds": len(both),
                    "difference [95 % CI]": text,
                    "direction": word,
                }
            )
    return pd.DataFrame(rows).set_index([*by, "comparison"])


def mean_ci_table(per_seed: pd.DataFrame, value: str, by: Sequence[str]) -> pd.Series:
    """``value``'s mean ± 95 % t half-width over seeds (:func:`fmt_mean_ci`), per group of
    ``by`` (with one seed: its value, three digits)."""

    def text(values: pd.Series) -> str:
        return fmt_mean_ci(values) if len(values) > 1 else f"{float(values.iloc[0]):.3g}"

    return per_seed.groupby(list(by))[value].agg(text).rename(f"{value}, mean ± 95 % CI")


def in_words(rows: pd.DataFrame, where: str) -> str:
    """Rows of a :func:`paired_table` as prose for a glued sentence: "+2 [-31, +34] (tied)
    at 50 steps, ..."; ``where`` is formatted with each row's index levels and columns
    by name (e.g. "at {steps} steps")."""
    return ", ".join(
        f"{r['difference [95 % CI]']} ({r['direction']}) {where.format(**r)}"
        for _, r in rows.reset_index().iterrows()
    )
