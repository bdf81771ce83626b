"""benchmarks/gpu_check.py: on a CPU its --dry-run builds every gpu recipe with the bundled model,
runs one step of each and writes the JSON the README's GPU table is made from."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402

from alignkit import recipe as rc  # noqa: E402


def test_every_gpu_recipe_is_checked_and_cluster_recipes_that_need_sharding_are_skipped_with_a_reason():
    names, skipped = gpu_check.selected(80.0)
    gpu = [n for n in rc.list_recipes() if n.endswith("/gpu.yaml")]
    assert gpu and set(gpu) <= set(names)
    assert set(names) | set(skipped) == set(rc.list_recipes())
    for name, reason in skipped.items():
        assert name.endswith("/cluster.yaml") and "GiB on one GPU" in reason
    assert gpu_check.step_time_gpu("Tesla T4") == "T4" and gpu_check.step_time_gpu("NVIDIA H200") is None


def test_without_a_gpu_the_real_check_refuses_and_names_the_dry_run(monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--dry-run"):
        gpu_check.main([])


@pytest.mark.slow
def test_dry_run_builds_every_recipe_and_runs_one_step(tmp_path):
    out = tmp_path / "cpu.json"
    result = gpu_check.main(["--dry-run", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["dry_run"] is True and result["gpu"] == "cpu-dry-run"
    names, _ = gpu_check.selected(80.0)
    assert [r["recipe"] for r in result["recipes"]] == names
    for row in result["recipes"]:
        assert row["steps"] == 1 and row["s_per_step"] > 0, row
        assert row["model"] == "smollm2-135m" and row["plan_gib"] > 0, row
