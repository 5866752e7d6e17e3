"""The one plotting style of the book, and small figure helpers."""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

from gmdiff import html_tables


def style() -> None:
    """Apply the book's style: seaborn 'ticks', colour-blind palette, readable sizes; tables
    without pandas' default row numbers (:func:`gmdiff.html_tables.install`)."""
    html_tables.install()
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


def panels(n: int, ncols: int = 3, aspect: float = 0.8, width: float = COLUMN_WIDTH_IN, **kwargs):
    """A figure of `n` panels laid out in rows of at most `ncols`, `width` inches wide.

    Each panel's height is `aspect` times its width; unused grid cells are hidden.
    Extra keyword arguments go to ``plt.subplots`` (e.g. ``sharex``). Returns the figure
    and the list of the `n` axes in reading order.
    """
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axs = plt.subplots(
        nrows, ncols, squeeze=False, figsize=(width, width / ncols * aspect * nrows), **kwargs
    )
    flat = list(axs.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


#: The book's colour map for one-channel images: dark ink on light paper (a pixel at -1
#: white, at 1 black, as the 8x8 digits are drawn). Three-channel images keep their colours.
IMAGE_CMAP = "gray_r"


def show_images(ax, x, ncols: int | None = None, pad: int = 1):
    """Images ``x`` (N, C, H, W) in [-1, 1] (C = 1 or 3) shown on ``ax`` as one grid,
    ``ncols`` per row (default: ceil(sqrt N)), with ``pad`` pixels of mid-grey between and
    around them: their 8-bit pixels (:func:`gmdiff.images.to_uint8`) tiled by
    :func:`gmdiff.images.grid`, in :data:`IMAGE_CMAP`, without ticks (the axis labels stay
    free for the caller). Returns the ``AxesImage``."""
    from gmdiff import images

    g = images.grid(images.to_uint8(x.detach().cpu()), ncols, pad, pad_value=128)
    shown = ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap=IMAGE_CMAP, vmin=0, vmax=255)
    ax.set(xticks=[], yticks=[])
    return shown


# -- files written by the command line ------------------------------------------------------


def save_scatter(x, path, reference=None, title: str = "", text: dict | None = None):
    """A scatter plot of 2-D samples ``x`` (N, 2) as a PNG at ``path`` (written atomically),
    with labelled axes, an equal aspect and, when given, ``reference`` points (e.g. exact
    draws of the data) in grey beneath, and ``text`` as PNG text chunks (e.g. where the
    samples came from; read back with ``PIL.Image.open(path).text``). Uses the book's
    style without changing the caller's matplotlib settings. Returns the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from gmdiff.storage import atomic_write

    x = x.detach().cpu().double().numpy()
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"a scatter plot needs samples of shape (N, 2), got {x.shape}")
    with mpl.rc_context():
        style()
        fig = Figure(figsize=(5.0, 5.0))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        size = max(1.0, min(12.0, 4000 / len(x)))
        if reference is not None:
            r = reference.detach().cpu().double().numpy()
            ax.scatter(r[:, 0], r[:, 1], s=size, c="0.75", lw=0, label=f"data ({len(r)})")
        ax.scatter(x[:, 0], x[:, 1], s=size, lw=0, alpha=0.8, label=f"samples ({len(x)})")
        ax.set_xlabel("$x_1$ (data units)")
        ax.set_ylabel("$x_2$ (data units)")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper right", fontsize=8, markerscale=max(1.0, 4 / size))
        if title:
            ax.set_title(title, fontsize=9)
        atomic_write(path, lambda f: fig.savefig(f, format="png", metadata=text))
    return fig
