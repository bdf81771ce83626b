"""Recipes parse, reject unknown keys, build their trainers on CPU; accelerate configs load;
and a real 2-process DDP run (torchrun, gloo) ends with identical, changed weights on both ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alignkit import recipe as rc
from alignkit.tasks import build_task

RECIPES = rc.list_recipes()
ACCELERATE = sorted((rc.RECIPES_DIR / "accelerate").glob("*.yaml"))


def test_there_are_recipes_for_each_scale_out_scale():
    assert {Path(r).stem for r in RECIPES} >= {"gpu", "cluster"}
    assert {p.stem for p in ACCELERATE} >= {"ddp", "zero2", "zero3", "zero3_offload", "fsdp"}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_parses_and_quotes_paper_critical_fields(name):
    recipe = rc.load_recipe(name)
    for key in ("num_generations", "temperature", "beta", "loss_type", "max_completion_length",
                "learning_rate"):
        assert key in recipe["grpo"], f"{name} leaves grpo.{key} to TRL's default"


def test_launch_section_sets_the_planner_and_the_command():
    cluster = rc.load_recipe("00_start_here/cluster.yaml")
    assert rc.launch_settings(cluster) == (3, 8, False)  # zero3.yaml, 8 processes
    assert rc.launch_command("00_start_here/cluster.yaml", cluster).startswith(
        "accelerate launch --config_file alignkit/recipes/accelerate/zero3.yaml --num_processes 8 -m alignkit")
    plan = rc.plan_recipe(cluster)
    assert (plan.settings["zero"], plan.settings["gpus"], plan.settings["vllm"]) == (3, 8, "colocate")
    assert plan.vllm_share == cluster["grpo"]["vllm_gpu_memory_utilization"]
    gpu = rc.load_recipe("00_start_here/gpu.yaml")
    assert rc.launch_settings(gpu) == (0, 1, False)
    assert rc.launch_command("00_start_here/gpu.yaml", gpu) == "python -m alignkit train 00_start_here/gpu.yaml"
    with pytest.raises(ValueError, match="zero9.yaml"):
        rc.validate({**cluster, "launch": {"accelerate_config": "zero9.yaml"}})
    with pytest.raises(ValueError, match="launch.nodes"):
        rc.validate({**cluster, "launch": {"nodes": 2}})


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_comment_commands_match_the_launch_section(name):
    """The 'Run:' comment at the top of each recipe names it, and its accelerate config if any."""
    text = (rc.RECIPES_DIR / name).read_text()
    recipe = rc.load_recipe(name)
    assert f"alignkit train {name}" in text
    config = (recipe.get("launch") or {}).get("accelerate_config")
    if config:
        assert f"--config_file alignkit/recipes/accelerate/{config}" in text


def test_keyword_task_for_chapter_3():
    data, rewards = build_task("keyword", n_train=6, seed=1, keyword="Paris")
    assert len(data) == 6 and all("Paris" not in row["prompt"][0]["content"] for row in data)
    assert rewards[0](completions=["It is in Paris.", "A tower."]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="n_train"):
        build_task("keyword", n_train=0)


def test_unknown_keys_are_named_with_the_valid_ones():
    with pytest.raises(ValueError) as err:
        rc.load_recipe(RECIPES[0], ["--grpo.max_stepz", "3"])
    assert "grpo.max_stepz" in str(err.value) and "max_steps" in str(err.value)
    with pytest.raises(ValueError, match="task.n_trian"):
        rc.load_recipe(RECIPES[0], ["--task.n_trian", "3"])
    with pytest.raises(ValueError, match="section"):
        rc.load_recipe(RECIPES[0], ["--optim.lr", "3"])
    with pytest.raises(ValueError, match="unknown task"):
        build_task("nonexistent")


def test_overrides_parse_values_as_yaml():
    recipe = rc.load_recipe(RECIPES[0], ["--grpo.max_steps", "7", "--grpo.beta", "0.04",
                                         "--model.lora", "null"])
    assert recipe["grpo"]["max_steps"] == 7 and recipe["grpo"]["beta"] == 0.04
    assert recipe["model"]["lora"] is None


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type.value in ("MULTI_GPU", "DEEPSPEED", "FSDP")
    raw = yaml.safe_load(path.read_text())
    if raw["distributed_type"] == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(path.stem[4])


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_its_trainer_with_the_bundled_model(name, tmp_path):
    recipe = rc.load_recipe(name)
    recipe = rc.load_recipe(name, rc.cpu_substitutes(recipe))
    trainer = rc.build_trainer(recipe, output_dir=tmp_path)
    assert trainer.args.num_generations == recipe["grpo"]["num_generations"]
    assert trainer.args.beta == recipe["grpo"]["beta"]
    if recipe["model"].get("lora"):
        assert any("lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad)


@pytest.mark.slow
def test_two_process_ddp_grpo_step_on_cpu(tmp_path):
    name = "00_start_here/gpu.yaml"
    overrides = rc.cpu_substitutes(rc.load_recipe(name))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "alignkit",
           "train", name, "--output-dir", str(tmp_path), *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ends = [json.loads((tmp_path / f"rank{r}-end.json").read_text()) for r in (0, 1)]
    assert [e["world_size"] for e in ends] == [2, 2]
    assert all(e["global_step"] == 1 and e["changed"] for e in ends)
    assert ends[0]["digest"] == ends[1]["digest"]  # DDP kept the replicas identical
