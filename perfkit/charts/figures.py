"""What every chart module draws alike: the figure that says there is nothing to draw."""

from __future__ import annotations

from matplotlib.figure import Figure


def message_figure(message: str, *, width: float = 8.0, height: float = 3.0) -> Figure:
    """A figure holding only ``message``, centred: what a chart returns when its data is empty."""
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig
