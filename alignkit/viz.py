"""One house style for every plot in the workbook, and small plotting helpers.

Call ``use_style()`` once per notebook (the setup cell does). Chapters add their own plotting
functions here when a figure is drawn more than once. Introduced in chapter 0.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# colour-blind-safe palette (Okabe-Ito), in the order lines are drawn
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_style() -> None:
    """Readable-in-print defaults: larger fonts, light grid, no top/right spines, Okabe-Ito colours."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "font.size": 11,
        "axes.titlesize": 12,
        "axes.labelsize": 11,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "lines.linewidth": 2.0,
    })


def subplots(ncols: int = 1, nrows: int = 1, *, width: float = 4.6, height: float = 3.6, **kwargs):
    """``plt.subplots`` sized per panel, in the house style; returns ``(fig, axes)``."""
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             layout="constrained", **kwargs)
    return fig, axes


def line_with_band(ax, x, mean, lo=None, hi=None, *, label=None, color=None, **kwargs):
    """A line with a shaded interval (e.g. a 95% interval over seeds)."""
    (line,) = ax.plot(x, mean, label=label, color=color, **kwargs)
    if lo is not None and hi is not None:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def seed_band(ax, x, runs, *, label=None, color=None, **kwargs):
    """Mean over seeds (rows of ``runs``) with a min-max band."""
    runs = np.asarray(runs, dtype=float)
    return line_with_band(ax, x, runs.mean(0), runs.min(0), runs.max(0), label=label, color=color,
                          **kwargs)
