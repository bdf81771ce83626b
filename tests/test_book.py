"""The book's generated landing page is up to date with the committed ledgers (tools/build_book.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_book  # noqa: E402


def test_landing_page_is_current():
    result = subprocess.run([sys.executable, "tools/build_book.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scoreboard_counts_every_claim():
    """The scoreboard adds up to the claims in results/*/cpu.json, counted here independently."""
    import json

    claims = sum(len(json.loads(p.read_text())["claims"]) for p in ROOT.glob("results/*/cpu.json"))
    _, total = build_book.scoreboard()
    assert sum(total.values()) == claims > 0


def test_badge_names_its_numbers():
    svg = build_book.badge_svg("claims", "3 of 4", "#000")
    assert svg.startswith("<svg") and ">claims<" in svg and ">3 of 4<" in svg
