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


def test_show_images_tiles_8_bit_pixels_in_the_book_colour_map():
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    x = torch.full((5, 1, 2, 3), -1.0)
    x[1] = 1.0
    x[4, 0, 1, 2] = 0.5  # (0.5 + 1) / 2 * 255 = 191.25 -> 191
    fig, ax = plt.subplots()
    shown = plotting.show_images(ax, x, ncols=2, pad=1)
    a = np.asarray(shown.get_array())
    assert a.shape == (3 * (2 + 1) + 1, 2 * (3 + 1) + 1)  # 3 rows of 2, one-pixel borders
    assert (a[1:3, 1:4] == 0).all() and (a[1:3, 5:8] == 255).all()  # images 0 and 1
    assert a[7 + 1, 1 + 2] == 191 and (a[7:9, 1:4] == 0).sum() == 5  # image 4, row 3
    border = np.ones_like(a, dtype=bool)
    for r in range(3):
        for c in range(2):
            border[1 + 3 * r : 3 + 3 * r, 1 + 4 * c : 4 + 4 * c] = False
    assert (a[border] == 128).all() and (a[7:9, 5:8] == 128).all()  # mid-grey; empty cell too
    assert shown.get_cmap().name == plotting.IMAGE_CMAP and shown.get_clim() == (0, 255)
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    rgb = plotting.show_images(ax, torch.zeros(4, 3, 2, 2), pad=0)  # 2 x 2, colours kept
    assert np.asarray(rgb.get_array()).shape == (4, 4, 3)
    assert (np.asarray(rgb.get_array()) == 128).all()  # 0 -> 127.5, rounded half to even
    plt.close(fig)
