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
