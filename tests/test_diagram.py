"""alignkit.diagram: the method diagrams every chapter opens with."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from alignkit.diagram import flow_diagram  # noqa: E402


def patches(fig, kind):
    return [p for p in fig.axes[0].patches if isinstance(p, kind)]


def test_boxes_arrows_and_loop():
    fig = flow_diagram(["a", "b", "c"], notes=["x", None, "z"], loop="again", title="t")
    assert len(patches(fig, FancyBboxPatch)) == 3
    assert len(patches(fig, FancyArrowPatch)) == 3  # two between boxes, one loop back
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"a", "b", "c", "x", "z", "again"} <= set(texts)
    assert fig.axes[0].get_title() == "t"


def test_no_loop_no_back_arrow():
    fig = flow_diagram(["a", "b"])
    assert len(patches(fig, FancyArrowPatch)) == 1


@pytest.mark.parametrize("steps", [["only one"], list("abcdefgh")])
def test_refuses_too_few_or_too_many_steps(steps):
    with pytest.raises(ValueError, match="2 to 7 steps"):
        flow_diagram(steps)


def test_notes_must_match_steps():
    with pytest.raises(ValueError, match="notes has 1 entries for 2 steps"):
        flow_diagram(["a", "b"], notes=["x"])
