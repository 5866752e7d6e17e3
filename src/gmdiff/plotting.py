"""The one plotting style of the book, and small figure helpers."""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns


def style() -> None:
    """Apply the book's style: seaborn 'ticks', colour-blind palette, readable sizes."""
    sns.set_theme(style="ticks", palette="colorblind", context="notebook")
    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.constrained_layout.use": True,
        }
    )


# The book's content column is about 772 px; at figure.dpi 100 a figure at most 8.2 in wide
# is shown at (nearly) its natural size, so 9-11 pt labels stay readable.
COLUMN_WIDTH_IN = 8.2


def panels(n: int, ncols: int = 3, aspect: float = 0.8, width: float = COLUMN_WIDTH_IN,
           **kwargs):
    """A figure of `n` panels laid out in rows of at most `ncols`, `width` inches wide.

    Each panel's height is `aspect` times its width; unused grid cells are hidden.
    Extra keyword arguments go to ``plt.subplots`` (e.g. ``sharex``). Returns the figure
    and the list of the `n` axes in reading order.
    """
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axs = plt.subplots(nrows, ncols, squeeze=False,
                            figsize=(width, width / ncols * aspect * nrows), **kwargs)
    flat = list(axs.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]
