"""Chapter 1's hard-subset step, ``python -m alignkit select``, at smoke size on the offline data."""

import json

import pytest

from alignkit import cli
from alignkit import recipe as rc
from alignkit.chapters.bleuberi import hard_subset
from alignkit.chapters.bleuberi.task import bleuberi_pool
from alignkit.selection import score_outputs
from alignkit.tasks import build_task

RECIPE = "01_bleuberi/cluster.yaml"


def overrides(path, *extra):
    """The cluster recipe on the bundled model: 6 offline prompts, keep 2, 4 new tokens."""
    return ["--model.name", "smollm2-135m", "--task.source", "offline", "--task.subset", str(path),
            "--select.pool", "6", "--select.k", "2", "--select.max_new_tokens", "4",
            "--select.backend", "transformers", "--select.chunk", "4", "--select.batch_size", "4", *extra]


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["01_bleuberi/cluster.yaml", "01_bleuberi/gpu.yaml"])
def test_bleuberi_recipes_train_on_a_selected_subset(name):
    text = (rc.RECIPES_DIR / name).read_text()
    recipe = rc.load_recipe(name)
    assert recipe["task"]["subset"] and f"python -m alignkit select {name}" in text
    assert "recipe takes n_train shuffled" not in text  # no longer what the paper-exact recipe trains on
    settings = hard_subset.select_settings(recipe)
    assert (settings["temperature"], settings["top_p"], settings["seed"], settings["metric"]) == (0.7, 0.9, 42, "bleu")
    assert settings["model"] == recipe["model"]["name"]


def test_a_missing_subset_names_the_select_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m alignkit select"):
        build_task("bleuberi", n_train=2, subset=str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match=r"select\.k"):
        hard_subset.select_settings(rc.load_recipe(RECIPE, ["--select.k", "0"]))
    with pytest.raises(ValueError, match="task.subset"):
        hard_subset.select_settings(rc.load_recipe(RECIPE, ["--task.subset", "null"]))
    assert cli.main(["select", RECIPE, "--select.colour", "red"]) == 2  # unknown key, before a model loads


@pytest.mark.slow
def test_select_writes_the_k_lowest_resumes_and_skips(tmp_path, capsys, monkeypatch):
    path = tmp_path / "hard.jsonl"
    assert cli.main(["select", RECIPE, *overrides(path)]) == 0
    rows, manifest = read_rows(path), json.loads((tmp_path / "hard.jsonl.manifest.json").read_text())
    cache = read_rows(tmp_path / "hard.jsonl.outputs.jsonl")
    assert len(rows) == 2 and len(cache) == 1 + 6  # header + one answer per pool prompt
    # the kept ones are the 2 lowest BLEU scores of the whole answers, written highest first
    pool = bleuberi_pool("offline", 1, ("gold",))[:6]
    answers = {c["i"]: c["output"] for c in cache[1:]}
    scores = score_outputs([answers[i] for i in range(6)], [p["references"] for p in pool])
    assert [r["score"] for r in rows] == pytest.approx(sorted(scores)[:2][::-1])
    assert {r["id"] for r in rows} == {pool[i]["id"] for i in sorted(range(6), key=lambda i: scores[i])[:2]}
    assert manifest["model"] == "smollm2-135m" and manifest["pool_size"] == 6 and manifest["k"] == 2
    assert manifest["sampler"] == {"backend": "transformers", "temperature": 0.7, "top_p": 0.9, "seed": 42,
                                   "max_new_tokens": 4}
    assert manifest["commit"]
    # the recipe then trains on it
    data, _ = build_task("bleuberi", n_train=5, subset=str(path))
    assert sorted(data["references"]) == sorted(r["references"] for r in rows)

    # the same settings again: nothing to do, no model loaded
    def no_model(*args, **kwargs):
        raise AssertionError("the sampler should not be built")

    monkeypatch.setattr(hard_subset, "_Sampler", no_model)
    capsys.readouterr()
    assert cli.main(["select", RECIPE, *overrides(path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    # other settings: refused by name
    assert cli.main(["select", RECIPE, *overrides(path, "--select.top_p", "0.5")]) == 2
    assert "top_p" in capsys.readouterr().err
    monkeypatch.undo()

    # interrupted after the first chunk (prompts 0-3): the rerun samples only prompts 4-5
    path.unlink()
    (tmp_path / "hard.jsonl.manifest.json").unlink()
    cache_file = tmp_path / "hard.jsonl.outputs.jsonl"
    cache_file.write_text("\n".join(json.dumps(c) for c in cache[:5]) + "\n")
    sampled = []
    real_call = hard_subset._Sampler.__call__

    def spy(self, prompts, start):
        sampled.append(start)
        return real_call(self, prompts, start)

    monkeypatch.setattr(hard_subset._Sampler, "__call__", spy)
    assert cli.main(["select", RECIPE, *overrides(path)]) == 0
    assert sampled == [4]
    assert read_rows(path) == rows  # the same subset as the uninterrupted run
