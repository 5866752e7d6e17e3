"""gmdiff.html_tables: the chapters' DataFrames in HTML without pandas' default index."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.formatters import DisplayFormatter

from gmdiff import html_tables, plotting


@pytest.mark.parametrize("n", [3, 100])  # 100 rows: pandas cuts to display.min_rows
def test_notebook_html_with_index_is_pandas_own(n):
    df = pd.DataFrame({"x": [0.123456] * n, "name": ["a"] * n})
    assert html_tables.notebook_html(df, index=True) == df._repr_html_()


def test_only_the_default_index_is_dropped():
    df = pd.DataFrame({"model": ["a", "b"], "FD": [1.25, 2.5]})
    html = html_tables.table_html(df)
    assert "<th>0</th>" not in html and "<td>a</td>" in html and "<th>FD</th>" in html
    numbered = pd.DataFrame({"a": [1, 2, 3]}, index=pd.Index([0, 1, 2]))  # not a RangeIndex
    assert html_tables.has_default_index(numbered)
    assert "<th>1</th>" not in html_tables.table_html(numbered)
    for kept in (df.set_index("model"), df.iloc[1:], df.rename_axis("seed")):
        assert not html_tables.has_default_index(kept)
        assert html_tables.table_html(kept) == kept._repr_html_()


def test_style_installs_the_formatter_in_a_kernel(monkeypatch):
    shell = type("Shell", (), {"display_formatter": DisplayFormatter()})()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    df = pd.DataFrame({"a": [1, 2]})
    html = shell.display_formatter.formatters["text/html"]
    assert "<th>0</th>" in html(df)
    plotting.style()
    assert "<th>0</th>" not in html(df) and "<td>1</td>" in html(df)
    monkeypatch.setattr("IPython.get_ipython", lambda: None)
    html_tables.install()  # outside IPython: nothing to do, no error
