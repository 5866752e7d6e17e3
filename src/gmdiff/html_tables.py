"""The chapters' pandas tables as the book shows them: without pandas' default row numbers.

A DataFrame whose index is pandas' default (row numbers 0, 1, 2, ... without a name)
shows those numbers as its first column: they tell a reader nothing and take a share of the
book's column. :func:`install`, which :func:`gmdiff.plotting.style` calls in every chapter,
makes IPython write such a frame's HTML without the index; any other frame's HTML is
pandas' own, and so is every frame's text/plain form.
"""

from __future__ import annotations

import pandas as pd


def has_default_index(df: pd.DataFrame) -> bool:
    """True if `df`'s index is plain row numbering 0, 1, 2, ... without a name: pandas'
    default ``RangeIndex``, or the same numbers in another index type (after a filter)."""
    idx = df.index
    return idx.nlevels == 1 and idx.name is None and idx.equals(pd.RangeIndex(len(idx)))


def notebook_html(df: pd.DataFrame, *, index: bool) -> str:
    """`df` as pandas' notebook HTML (``DataFrame._repr_html_``: the display options for
    rows, columns and dimensions), with or without the index."""
    max_rows = pd.get_option("display.max_rows")
    if max_rows is not None and len(df) > max_rows:
        max_rows = pd.get_option("display.min_rows") or max_rows  # pandas shows min_rows then
    return df.to_html(
        index=index,
        notebook=True,
        max_rows=max_rows,
        max_cols=pd.get_option("display.max_columns"),
        show_dimensions=pd.get_option("display.show_dimensions"),
        float_format=pd.get_option("display.float_format"),
    )


def table_html(df: pd.DataFrame) -> str | None:
    """The HTML that the book shows for `df`: pandas' own, less a default index."""
    if not has_default_index(df) or not pd.get_option("display.notebook_repr_html"):
        return df._repr_html_()
    return notebook_html(df, index=False)


def install() -> None:
    """Render DataFrames with :func:`table_html` in the running IPython kernel (a no-op
    outside IPython, e.g. when a chapter runs as a plain script)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the book extra
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
