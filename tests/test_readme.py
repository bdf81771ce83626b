"""README.md stays true: its generated blocks match what the repository now holds."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import update_readme  # noqa: E402


def test_readme_recipe_table_matches_the_recipes_and_the_planner():
    assert update_readme.recipes_markdown() in (ROOT / "README.md").read_text(), \
        "README's recipe table is stale: run python tools/update_readme.py"


def test_readme_ledger_matches_the_committed_cpu_results():
    assert update_readme.ledger_markdown() in (ROOT / "README.md").read_text(), \
        "README's claims ledger is stale: run python tools/update_readme.py"


def test_readme_names_both_commands():
    text = (ROOT / "README.md").read_text()
    assert "make test" in text and "make workbook" in text
