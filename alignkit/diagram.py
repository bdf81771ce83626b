"""Method diagrams drawn by code: a row of boxes joined by arrows, with an optional loop back.

Every chapter opens with one picture of its method ("The method in one picture"). Drawing it
with matplotlib instead of pasting an image keeps it in the notebook's source, lets a reader
change it, and lets the test suite run it. Introduced in chapter 0.

Example (chapter 0's GRPO loop)::

    flow_diagram(["prompt", "policy samples G completions", "reward each", "group advantages",
                  "policy-gradient step"], loop="repeat with the updated policy")
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from alignkit.viz import PALETTE, use_style

BOX_W, BOX_H, GAP = 2.0, 1.1, 0.7  # box width and height, gap between boxes (data units)


def _box(ax, x: float, label: str, note: str | None, color: str) -> None:
    """One rounded box at ``x`` with a wrapped label, and an optional note underneath."""
    ax.add_patch(FancyBboxPatch((x, 0), BOX_W, BOX_H, boxstyle="round,pad=0.05,rounding_size=0.15",
                                facecolor=color, edgecolor="none", alpha=0.9))
    ax.text(x + BOX_W / 2, BOX_H / 2, textwrap.fill(label, 14, break_long_words=False, break_on_hyphens=False), ha="center", va="center",
            color="white", fontsize=9, fontweight="bold")
    if note:
        ax.text(x + BOX_W / 2, -0.15, textwrap.fill(note, 20, break_long_words=False), ha="center", va="top",
                fontsize=8.5, color="#333333")


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **kwargs) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#444444",
                                 linewidth=1.4, **kwargs))


def flow_diagram(steps: Sequence[str], *, notes: Sequence[str | None] | None = None,
                 loop: str | None = None, title: str | None = None, colors: Sequence[int] | None = None):
    """Draw ``steps`` as boxes left to right, joined by arrows; return the figure.

    Args:
        steps: the box labels, in order (2 to 7; longer labels are wrapped).
        notes: an optional small caption under each box (``None`` for none), e.g. the function
            that implements that step.
        loop: when given, an arrow from the last box back to the first, labelled with this text
            (an RL loop: sample, score, update, repeat).
        title: a title above the diagram.
        colors: an index into the house palette per box (default: all blue, the last one orange).
    """
    if not 2 <= len(steps) <= 7:
        raise ValueError(f"flow_diagram takes 2 to 7 steps, got {len(steps)}: {list(steps)}")
    notes = list(notes) if notes is not None else [None] * len(steps)
    if len(notes) != len(steps):
        raise ValueError(f"notes has {len(notes)} entries for {len(steps)} steps; give one each")
    colors = list(colors) if colors is not None else [0] * (len(steps) - 1) + [1]
    use_style()
    width = len(steps) * BOX_W + (len(steps) - 1) * GAP
    fig, ax = plt.subplots(figsize=(min(1.55 * len(steps) + 0.6, 11.5), 2.6 if loop else 2.2))
    for i, (label, note) in enumerate(zip(steps, notes, strict=True)):
        x = i * (BOX_W + GAP)
        _box(ax, x, label, note, PALETTE[colors[i] % len(PALETTE)])
        if i:
            _arrow(ax, (x - GAP + 0.05, BOX_H / 2), (x - 0.05, BOX_H / 2))
    top = BOX_H
    if loop:
        _arrow(ax, (width - BOX_W / 2, BOX_H + 0.05), (BOX_W / 2, BOX_H + 0.05),
               connectionstyle="arc3,rad=0.12")
        ax.text(width / 2, BOX_H + 0.72, loop, ha="center", va="bottom", fontsize=9.5,
                style="italic", color="#333333")
        top = BOX_H + 1.1
    has_notes = any(notes)
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.9 if has_notes else -0.2, top + 0.1)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=12)
    fig.tight_layout()
    return fig
