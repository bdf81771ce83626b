"""README.md stays true: its generated blocks match what the repository now holds."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import update_readme  # noqa: E402


def test_readme_recipe_table_matches_the_recipes_and_the_planner():
    assert update_readme.recipes_markdown() in (ROOT / "README.md").read_text(), \
        "README's recipe table is stale: run python tools/update_readme.py"


def test_readme_ledger_matches_the_committed_cpu_results():
    assert update_readme.ledger_markdown() in (ROOT / "README.md").read_text(), \
        "README's claims ledger is stale: run python tools/update_readme.py"


NOT_RERUN = "benchmarks/grpo_cpu.json predates the roofline benchmark (rerun benchmarks/grpo_cpu.py)"


def test_readme_performance_table_matches_the_committed_benchmark():
    if not update_readme.benchmark_has_roofline():
        pytest.skip(NOT_RERUN)
    assert update_readme.performance_markdown() in (ROOT / "README.md").read_text(), \
        "README's performance table is stale: run python tools/update_readme.py"


def test_the_benchmark_json_carries_the_roofline_and_every_variant():
    import json

    if not update_readme.benchmark_has_roofline():
        pytest.skip(NOT_RERUN)
    data = json.loads((ROOT / "benchmarks/grpo_cpu.json").read_text())
    assert data["roofline_s"] > 0 and data["commit"]
    assert set(data["cpu_flags"]) == {"avx512_bf16", "amx_bf16", "avx512f", "avx2"}
    for variant in ("alignkit", "trl-lora", "trl-lora-fp32"):
        row = data["grpo"][variant]
        assert row["step"] >= row["generation"] + row["loss_forward"] + row["backward"] > 0, variant


def test_readme_names_both_commands():
    text = (ROOT / "README.md").read_text()
    assert "make test" in text and "make workbook" in text
