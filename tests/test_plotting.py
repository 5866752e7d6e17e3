import matplotlib

matplotlib.use("Agg")

from gmdiff import plotting


def test_panels_rows_and_width():
    fig, axs = plotting.panels(5, ncols=3, aspect=0.5, width=8.0)
    assert len(axs) == 5
    w, h = fig.get_size_inches()
    assert (w, h) == (8.0, 8.0 / 3 * 0.5 * 2)
    grid = fig.axes
    assert len(grid) == 6 and not grid[5].get_visible() and all(a.get_visible() for a in axs)
    fig2, _ = plotting.panels(2, ncols=3)
    assert len(fig2.axes) == 2 and fig2.get_size_inches()[0] == plotting.COLUMN_WIDTH_IN
