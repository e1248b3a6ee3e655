"""The shared figure style: heatmaps carry no grid and integer-indexed axes get integer ticks."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from icar.figures import style  # noqa: E402


def test_image_axes_have_no_grid_and_integer_ticks():
    with matplotlib.rc_context():
        style.use_style()
        fig, (ax, ax_free) = plt.subplots(1, 2)
        style.image(ax, np.arange(80.0).reshape(8, 10), cmap="viridis")
        style.image(ax_free, np.arange(80.0).reshape(8, 10), integer=False)
        fig.canvas.draw()
        assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
        ticks = np.concatenate([ax.get_xticks(), ax.get_yticks()])
        assert np.allclose(ticks, np.round(ticks))
        assert not np.allclose(ax_free.get_xticks(), np.round(ax_free.get_xticks()))   # default locator: 2.5, 7.5
        plt.close(fig)


def test_heatmap_uses_the_image_style():
    with matplotlib.rc_context():
        style.use_style()
        fig, ax = plt.subplots()
        style.heatmap(ax, np.eye(10), "identity")
        fig.canvas.draw()
        assert not any(line.get_visible() for line in ax.get_xgridlines())
        assert np.allclose(ax.get_xticks(), np.round(ax.get_xticks()))
        plt.close(fig)


def test_integer_ticks_refuses_an_unknown_axis():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="axis must be 'x', 'y' or 'both'; got 'z'"):
        style.integer_ticks(ax, "z")
    plt.close(fig)
