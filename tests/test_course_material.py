"""Every chapter notebook is course material an instructor can teach from.

Checks the shape DESIGN.md gives a chapter (learning objectives, one diagram drawn by code, a
"what you learned" summary, exercises each with a solution cell), the cell limits (at most 15
lines, at most 100 characters a line), ruff on the notebooks, and the output noise a reader
should not see (object reprs, frozen progress bars, a blanket warning filter).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SECTIONS = ["Learning objectives", "The method in one picture", "What you learned", "Exercises"]
MAX_LINES, MAX_CHARS = 15, 100
REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>")
FROZEN_BAR = re.compile(r"\b0%\|")
BLANKET_FILTER = re.compile(r"""filterwarnings\(\s*["']ignore["']\s*\)|simplefilter\(\s*["']ignore["']\s*\)""")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def headings(path: Path) -> list[tuple[int, str]]:
    """(cell index, heading text without the #s) of every markdown heading in the notebook."""
    found = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] == "markdown":
            found += [(i, line.lstrip("#").strip()) for line in source(cell).splitlines()
                      if line.startswith("#")]
    return found


def output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        data = out.get("data", {})
        parts.append("".join(data.get("text/plain", "")))
    return "\n".join(parts)


ids = [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_sections_in_order(path):
    """Objectives and the diagram come first, the summary before the exercises."""
    found = [text for _, text in headings(path)]
    positions = []
    for section in SECTIONS:
        matches = [i for i, text in enumerate(found) if re.fullmatch(rf"(\d+\.\s*)?{section}", text)]
        assert matches, f"{path.name} has no '## {section}' heading"
        positions.append(matches[0])
    assert positions == sorted(positions), f"{path.name}: sections out of order {positions}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_diagram_is_drawn_by_code(path):
    """The cell after "The method in one picture" draws it with alignkit.diagram."""
    nb = cells(path)
    at = next(i for i, text in headings(path) if text.endswith("The method in one picture"))
    code = next(c for c in nb[at + 1:] if c["cell_type"] == "code")
    assert "flow_diagram(" in source(code), f"{path.name}: the diagram cell does not call flow_diagram"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_exercise_has_a_solution(path):
    """Each '### Exercise N' is followed, before the next exercise, by a code cell tagged
    'solution' (collapsed in Jupyter and in the book); the test suite runs them at smoke."""
    nb = cells(path)
    starts = [i for i, c in enumerate(nb) if c["cell_type"] == "markdown"
              and re.match(r"#+\s*Exercise \d+", source(c))]
    assert len(starts) >= 2, f"{path.name} has {len(starts)} exercises; give at least two"
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(nb)
        solutions = [c for c in nb[start + 1:end] if c["cell_type"] == "code"
                     and "solution" in c["metadata"].get("tags", [])]
        title = source(nb[start]).splitlines()[0]
        assert solutions, f"{path.name}: '{title}' has no code cell tagged 'solution'"
        for cell in solutions:
            assert cell["metadata"].get("jupyter", {}).get("source_hidden"), \
                f"{path.name}: the solution to '{title}' is not collapsed (jupyter.source_hidden)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_cells_are_short(path):
    long = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "code":
            continue
        lines = source(cell).splitlines()
        if len(lines) > MAX_LINES:
            long.append(f"cell {i}: {len(lines)} lines")
        long += [f"cell {i}: a line of {len(line)} characters" for line in lines
                 if len(line) > MAX_CHARS]
    assert not long, f"{path.name}: " + "; ".join(long)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_output_noise(path):
    """No object reprs, no progress bar frozen at 0%, no blanket warning filter."""
    noise = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "code":
            continue
        if BLANKET_FILTER.search(source(cell)):
            noise.append(f"cell {i}: a blanket warnings filter (silence one warning, say why)")
        text = output_text(cell)
        noise += [f"cell {i}: prints {m}" for m in REPR.findall(text)]
        if "{'id': " in text:
            noise.append(f"cell {i}: prints a ledger record as a dict (end the line with ';')")
        if FROZEN_BAR.search(text):
            noise.append(f"cell {i}: a progress bar frozen at 0%")
    assert not noise, f"{path.name}: " + "; ".join(noise)


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed")
def test_ruff_passes_on_the_notebooks():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "--no-cache", *map(str, NOTEBOOKS)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
