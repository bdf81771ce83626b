"""Recipes: the GRPO section a recipe trains with is GRPO_DEFAULTS < the chapter's paper fields < the
YAML, and the built trainer carries it; bad recipes are refused by name; ``trainer: sft`` and
``trainer: reward`` build TRL's SFT and reward trainers; accelerate configs load; and a real
2-process DDP run (torchrun, gloo) ends with identical, changed weights on both ranks."""

import enum
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from alignkit import recipe as rc
from alignkit import tasks
from alignkit.chapters.index import paper_grpo
from alignkit.runtime import progress_bars
from alignkit.tasks import build_task
from alignkit.training import GRPO_DEFAULTS
from alignkit.training.grpo import _BOOKKEEPING

RECIPES = rc.list_recipes()
ACCELERATE = sorted((rc.RECIPES_DIR / "accelerate").glob("*.yaml"))

# What each chapter trains with, typed from the papers (not read from the code): BLEUBERI's
# released training/grpo.sh (TRL 0.17 defaults), LIMR's scripts/train.sh, DeepSeekMath's GRPO.
PAPER_VALUES = {
    "00_start_here": dict(temperature=1.0, top_p=1.0, top_k=0, beta=0.0, loss_type="grpo",
                          scale_rewards="group", epsilon=0.2, num_iterations=1),
    "01_bleuberi": dict(num_generations=8, temperature=0.9, top_p=1.0, top_k=50, beta=0.04, loss_type="bnpo",
                        scale_rewards="group", epsilon=0.2, num_iterations=1, max_grad_norm=0.2, seed=42,
                        lr_scheduler_type="constant_with_warmup"),
    "02_limr": dict(num_generations=8, temperature=1.2, top_p=1.0, top_k=0, beta=0.01, loss_type="grpo",
                    epsilon=0.2, adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0, seed=42),
    "03_kl_as_bayes": dict(temperature=1.0, top_k=0, beta=0.1, loss_type="grpo", scale_rewards="group"),
}


def raw(name: str) -> dict:
    return yaml.safe_load((rc.RECIPES_DIR / name).read_text())


def plain(value):
    """A TrainingArguments value as the YAML writes it (enums such as SchedulerType -> their string)."""
    return value.value if isinstance(value, enum.Enum) else value


def test_there_are_recipes_for_each_scale_out_scale():
    assert {Path(r).stem for r in RECIPES} >= {"gpu", "cluster"}
    assert {p.stem for p in ACCELERATE} >= {"ddp", "zero2", "zero3", "zero3_offload", "fsdp"}


def test_every_chapter_with_recipes_has_pinned_paper_values():
    assert {name.split("/")[0] for name in RECIPES} == set(PAPER_VALUES)


@pytest.mark.parametrize("name", RECIPES)
def test_loaded_grpo_section_is_defaults_then_paper_then_yaml(name):
    text = raw(name)
    chapter = text["chapter"]
    recipe = rc.load_recipe(name)
    bars = {"disable_tqdm": not progress_bars()}  # follows TQDM_DISABLE (alignkit.runtime)
    assert recipe["grpo"] == {**_BOOKKEEPING, **bars, **GRPO_DEFAULTS, **paper_grpo(chapter), **text["grpo"]}
    for key, value in PAPER_VALUES[chapter].items():
        assert recipe["grpo"][key] == value, f"{name}: grpo.{key}"
    # nothing that decides the algorithm is left to TRL's (release-dependent) defaults
    assert set(GRPO_DEFAULTS) <= set(recipe["grpo"])
    assert recipe["model"] == text["model"] and recipe["task"] == text["task"]


@pytest.mark.parametrize("name", RECIPES)
def test_yaml_does_not_repeat_a_paper_field(name):
    """Paper-critical fields live in one place (GRPO_DEFAULTS or the chapter's PAPER_GRPO); a YAML
    value for one of them must be a departure, not a copy that could drift."""
    text = raw(name)
    lower = {**GRPO_DEFAULTS, **paper_grpo(text["chapter"])}
    repeated = {k: v for k, v in text["grpo"].items() if k in lower and lower[k] == v}
    assert not repeated, f"{name} repeats {repeated} (already set by GRPO_DEFAULTS / PAPER_GRPO)"


def test_an_override_beats_the_paper_layer_and_leaves_the_rest():
    recipe = rc.load_recipe("01_bleuberi/gpu.yaml", ["--grpo.temperature", "0.7"])
    assert recipe["grpo"]["temperature"] == 0.7
    assert (recipe["grpo"]["top_k"], recipe["grpo"]["beta"], recipe["grpo"]["loss_type"]) == (50, 0.04, "bnpo")


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


def _gpu_recipe():
    return raw("00_start_here/gpu.yaml")


@pytest.mark.parametrize("change, named", [
    ({"optim": {"lr": 1}}, ["'optim'", "'grpo'"]),  # unknown section, valid ones listed
    ({"trainer": "dpo"}, ["'dpo'", "grpo", "reward", "sft"]),
    ({"sft": {"max_steps": 1}}, ["'grpo'", "another trainer", "'sft'"]),
    ({"model": {"name": "x", "dtype": "bfloat16x"}}, ["model.dtype", "'bfloat16x'", "'float32'"]),
    ({"model": {"name": "x", "quantisation": "4bit"}}, ["model.quantisation", "quantization"]),
    ({"model": {"name": "x", "quantization": "8bit"}}, ["model.quantization", "'8bit'"]),
    ({"chapter": "07_nope"}, ["'07_nope'", "01_bleuberi"]),
    ({"task": {"name": "brevity", "n_trian": 3}}, ["task.n_trian", "n_train"]),
])
def test_bad_recipes_are_refused_by_name(change, named):
    with pytest.raises(ValueError) as err:
        rc.validate({**_gpu_recipe(), **change})
    for text in named:
        assert text in str(err.value), (text, str(err.value))


def test_a_missing_trainer_section_is_refused():
    recipe = _gpu_recipe()
    del recipe["grpo"]
    with pytest.raises(ValueError, match="missing the 'grpo' section"):
        rc.validate(recipe)


def test_a_dtype_this_machine_would_emulate_is_refused_when_building(monkeypatch, tmp_path):
    from alignkit import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(runtime, "pick_device", lambda: torch.device("cpu"))
    recipe = rc.load_recipe("00_start_here/gpu.yaml", ["--model.dtype", "bfloat16"])  # valid name...
    with pytest.raises(ValueError, match="bfloat16 is not native"):  # ...but emulated on this CPU
        rc.build_trainer(recipe, output_dir=tmp_path)


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
    from alignkit.training import FastGRPOTrainer

    text = raw(name)
    recipe = rc.load_recipe(name, rc.cpu_substitutes(rc.load_recipe(name)))
    trainer = rc.build_trainer(recipe, output_dir=tmp_path)
    assert isinstance(trainer, FastGRPOTrainer) and trainer.args.output_dir == str(tmp_path)
    # every merged field reaches trainer.args (report_to becomes a list)
    wrong = {k: (v, plain(getattr(trainer.args, k))) for k, v in recipe["grpo"].items()
             if k not in ("output_dir", "report_to") and plain(getattr(trainer.args, k)) != v}
    assert not wrong, f"{name}: recipe value vs trainer.args: {wrong}"
    # offline tracking at gpu/cluster scale: TensorBoard events and TRL's per-completion parquet
    assert trainer.args.report_to == ["tensorboard"] and trainer.args.log_completions
    # the paper's values, typed independently, are what trains
    for key, value in PAPER_VALUES[text["chapter"]].items():
        if key not in ("num_generations",):  # the CPU substitute shrinks the group
            assert plain(getattr(trainer.args, key)) == value, f"{name}: args.{key}"
    # and the CPU substitutes took effect
    assert (trainer.args.max_steps, trainer.args.use_vllm, trainer.args.max_completion_length) == (1, False, 8)
    assert trainer.args.num_generations == min(text["grpo"].get("num_generations", 8), 4)
    assert len(trainer.train_dataset) == 8
    lora = [n for n, p in trainer.model.named_parameters() if p.requires_grad and "lora_" in n]
    assert bool(lora) == bool(text["model"].get("lora"))
    base = trainer.model.get_base_model() if lora else trainer.model
    assert getattr(base, "is_loaded_in_4bit", False) == (text["model"].get("quantization") == "4bit")


LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM"}


def _tiny_task(rows):
    from datasets import Dataset

    def task(n_train: int = 4, seed: int = 0):
        return Dataset.from_list(rows[:n_train]), []

    return task


@pytest.mark.slow
def test_sft_recipe_builds_and_trains_trl_sft_trainer(monkeypatch, tmp_path):
    from trl import SFTTrainer

    from alignkit.runtime import trainer_precision

    rows = [{"prompt": [{"role": "user", "content": f"Say {w}."}],
             "completion": [{"role": "assistant", "content": f"{w}."}]} for w in ("hi", "yes", "no", "ok")]
    monkeypatch.setitem(tasks.registry(), "tiny_sft", _tiny_task(rows))
    recipe = rc.validate({"chapter": "00_start_here", "trainer": "sft",
                          "model": {"name": "smollm2-135m", "quantization": None, "lora": LORA, "dtype": "auto"},
                          "task": {"name": "tiny_sft", "n_train": 4, "seed": 0},
                          "sft": {"max_steps": 1, "per_device_train_batch_size": 2, "max_length": 64,
                                  "learning_rate": 1e-3}})
    with pytest.raises(ValueError, match="another trainer"):
        rc.validate({**recipe, "grpo": {}})
    trainer = rc.build_trainer(recipe, output_dir=tmp_path)
    assert type(trainer) is SFTTrainer
    args = trainer.args
    assert (args.max_steps, args.per_device_train_batch_size, args.max_length, args.learning_rate) == (1, 2, 64, 1e-3)
    assert args.completion_only_loss is True and args.output_dir == str(tmp_path)
    assert {"bf16": args.bf16, "fp16": args.fp16} == trainer_precision()
    assert len(trainer.train_dataset) == 4
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    trainer.train()
    assert trainer.state.global_step == 1
    now = dict(trainer.model.named_parameters())
    assert any(not (now[n].detach() == p).all() for n, p in lora.items())  # the step trained the adapter


@pytest.mark.slow
def test_reward_recipe_builds_and_trains_trl_reward_trainer(monkeypatch, tmp_path):
    from trl import RewardTrainer

    rows = [{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."},
            {"prompt": "Say yes.", "chosen": "Yes.", "rejected": "Whatever."}] * 2
    monkeypatch.setitem(tasks.registry(), "tiny_prefs", _tiny_task(rows))
    recipe = rc.validate({"chapter": "00_start_here", "trainer": "reward",
                          "model": {"name": "smollm2-135m", "quantization": None, "lora": None},
                          "task": {"name": "tiny_prefs", "n_train": 4},
                          "reward": {"max_steps": 1, "learning_rate": 1e-2, "per_device_train_batch_size": 2,
                                     "max_length": 32}})
    trainer = rc.build_trainer(recipe, output_dir=tmp_path)
    assert type(trainer) is RewardTrainer
    args = trainer.args
    assert (args.max_steps, args.learning_rate, args.per_device_train_batch_size, args.max_length) == (1, 1e-2, 2, 32)
    assert args.gradient_checkpointing is False and len(trainer.train_dataset) == 4
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight"}  # lora: null -> frozen backbone, linear head
    head = trainer.model.score.weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == 1 and not (trainer.model.score.weight.detach() == head).all()


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


@pytest.mark.slow
def test_two_process_fsdp_step_of_the_cluster_recipe_on_cpu(tmp_path):
    """The cluster engine really run: accelerate launch with the FSDP config (FSDP2, full sharding),
    2 CPU processes over gloo, the cluster recipe (full fine-tuning) on the bundled model, one step."""
    name = "00_start_here/cluster.yaml"
    overrides = rc.cpu_substitutes(rc.load_recipe(name))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           # no --cpu: with it accelerate falls back to its one-process launcher; without a GPU the
           # FSDP launcher starts 2 CPU processes on gloo (the recipe's --grpo.use_cpu true)
           str(rc.RECIPES_DIR / "accelerate" / "fsdp.yaml"), "--num_processes", "2",
           "-m", "alignkit", "train", name, "--output-dir", str(tmp_path), *overrides]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("rank*-end.json")) == ["rank0-end.json", "rank1-end.json"]
    ends = [json.loads((tmp_path / f"rank{r}-end.json").read_text()) for r in (0, 1)]
    assert [e["world_size"] for e in ends] == [2, 2]
    assert all(e["global_step"] == 1 and e["changed"] for e in ends)
    assert ends[0]["digest"] == ends[1]["digest"]  # the gathered full weights agree on both ranks
