"""What every chart module draws alike: the figure that says there is nothing to draw, plain
labels on a log axis."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter


def message_figure(message: str, *, width: float = 8.0, height: float = 3.0) -> Figure:
    """A figure holding only ``message``, centred: what a chart returns when its data is empty."""
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def plain_log_ticks(ax: Axes) -> None:
    """A log x axis labelled 1, 10, 100 (never 10^1); on an axis of less than two decades, 2 and 5
    (0.02, 20, 50...) too, so that a short axis has more than one label."""
    def minor(value: float, _) -> str:
        low, high = ax.get_xlim()
        short = low > 0 and high / low < 100
        return f"{value:g}" if short and f"{value:.0e}"[0] in "25" else ""

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(minor))
