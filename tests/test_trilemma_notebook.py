"""Chapter 5's exercise solutions run at smoke, and the reward-model scores it prints are right.

Each solution cell (tagged ``solution``) runs after the notebook's parameters cell only, so a
solution that leans on a name from the middle of the chapter fails here. Their asserts are the
check that they find what the exercise asks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_rlhf_trilemma.ipynb"


def _exercises() -> dict[str, list[str]]:
    """Exercise title -> the source of its solution cells, in order."""
    found, title = {}, None
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and re.match(r"#+\s*Exercise \d+", text):
            title = text.splitlines()[0].lstrip("# ")
            found[title] = []
        elif title and "solution" in cell["metadata"].get("tags", []):
            found[title].append(text)
    return found


def _parameters() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))


EXERCISES = _exercises()


def test_there_are_exercises_with_solutions():
    assert len(EXERCISES) >= 2 and all(EXERCISES.values())


@pytest.mark.parametrize("title", list(EXERCISES))
def test_solution_runs_and_its_asserts_hold(title, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_SCALE", "smoke")
    matplotlib.use("Agg")
    namespace = {"np": np}  # the chapter imports numpy in its first computing cell
    exec(compile(_parameters(), "parameters", "exec"), namespace)
    for k, source in enumerate(EXERCISES[title]):
        exec(compile(source, f"{title} (solution cell {k})", "exec"), namespace)


@pytest.mark.slow
def test_pair_scores_are_the_reward_models_scores():
    from alignkit.chapters.trilemma.style_pairs import pair_scores, style_pairs
    from alignkit.reward_model import load_reward_model, score_texts

    model, tok = load_reward_model("smollm2-135m", seed=0)
    pairs = style_pairs("test", 1)[:2]
    rows = pair_scores(model, tok, pairs)
    casual = score_texts(model, tok, [p["prompt"] + p["casual"] for p in pairs])
    assert [r["casual"] for r in rows] == pytest.approx(casual.tolist(), abs=1e-5)
    assert rows[0]["p_casual"] == pytest.approx(1 / (1 + np.exp(rows[0]["formal"] - rows[0]["casual"])))
    assert rows[0]["question"] == pairs[0]["prompt"].removeprefix("Question: ").strip()
    with pytest.raises(ValueError, match="pairs is empty"):
        pair_scores(model, tok, [])
