"""Recipes: one YAML per chapter x scale, parsed with command-line overrides, built into a trainer.

Layout of a recipe (see ``alignkit/recipes/*/``)::

    chapter: 00_start_here
    trainer: grpo
    model: {name: ..., quantization: 4bit | null, lora: {r: 16, ...} | null}
    task:  {name: brevity, n_train: 1000, seed: 0, ...}      # alignkit.tasks
    grpo:  {every trl.GRPOConfig field the paper cares about, with the paper's value quoted}
    launch: {accelerate_config: zero3.yaml, num_processes: 8}   # optional: how it is meant to run

Overrides use dotted keys: ``--grpo.max_steps 10 --model.name smollm2-135m``. An unknown key is
an error that names it and lists the valid keys. Introduced with the scale-out tools.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
SECTIONS = {"chapter": str, "trainer": str, "model": dict, "task": dict, "grpo": dict,
            "launch": dict, "notes": str}
MODEL_KEYS = ("name", "quantization", "lora", "dtype")
LAUNCH_KEYS = ("accelerate_config", "num_processes")


def grpo_fields() -> list[str]:
    from trl import GRPOConfig

    return sorted(f.name for f in fields(GRPOConfig))


def find_recipe(path: str | Path) -> Path:
    """A recipe path as given, or relative to ``alignkit/recipes`` (``00_start_here/gpu.yaml``)."""
    for candidate in (Path(path), RECIPES_DIR / path):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no recipe at {str(path)!r} (nor under {RECIPES_DIR}); "
                            f"available: {', '.join(list_recipes())}")


def list_recipes() -> list[str]:
    """Recipe names relative to ``alignkit/recipes`` (accelerate and slurm files excluded)."""
    return sorted(str(p.relative_to(RECIPES_DIR)) for p in RECIPES_DIR.glob("*/*.yaml")
                  if p.parent.name not in ("accelerate", "slurm"))


def validate(recipe: dict) -> dict:
    """Check every key; raise ``ValueError`` naming an unknown key and listing the valid ones."""
    from alignkit.tasks import task_arguments

    unknown = sorted(set(recipe) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown recipe section(s) {unknown}; valid: {sorted(SECTIONS)}")
    for section in ("trainer", "model", "task", "grpo"):
        if section not in recipe:
            raise ValueError(f"recipe is missing the {section!r} section")
    if recipe["trainer"] != "grpo":
        raise ValueError(f"trainer {recipe['trainer']!r} is not supported; valid: ['grpo']")
    checks = {"model": list(MODEL_KEYS), "task": ["name", *task_arguments(recipe["task"].get("name", ""))],
              "grpo": grpo_fields(), "launch": list(LAUNCH_KEYS)}
    for section, valid in checks.items():
        bad = sorted(set(recipe.get(section, {})) - set(valid))
        if bad:
            raise ValueError(f"unknown key(s) {[f'{section}.{k}' for k in bad]}; "
                             f"valid keys of {section!r}: {valid}")
    if recipe["model"].get("quantization") not in (None, "4bit"):
        raise ValueError(f"model.quantization must be null or '4bit', got {recipe['model']['quantization']!r}")
    config = recipe.get("launch", {}).get("accelerate_config")
    if config is not None and not (RECIPES_DIR / "accelerate" / config).is_file():
        raise ValueError(f"launch.accelerate_config {config!r} is not one of "
                         f"{sorted(p.name for p in (RECIPES_DIR / 'accelerate').glob('*.yaml'))}")
    return recipe


def launch_settings(recipe: dict) -> tuple[int, int, bool]:
    """``(zero_stage, n_gpus, offload)`` of the launch a recipe is meant for (``(0, 1, False)``:
    one GPU, no DeepSpeed). Reads the ZeRO stage and CPU offload from the recipe's accelerate
    config (``launch.accelerate_config``) and the GPU count from ``launch.num_processes``."""
    launch = recipe.get("launch") or {}
    n_gpus = int(launch.get("num_processes", 1))
    zero, offload = 0, False
    if launch.get("accelerate_config"):
        with open(RECIPES_DIR / "accelerate" / launch["accelerate_config"]) as f:
            deepspeed = yaml.safe_load(f).get("deepspeed_config") or {}
        zero = int(deepspeed.get("zero_stage", 0))
        offload = deepspeed.get("offload_optimizer_device", "none") not in ("none", None)
    return zero, n_gpus, offload


def launch_command(name: str, recipe: dict) -> str:
    """The shell command that runs recipe ``name`` as its ``launch`` section says (README, notebooks)."""
    launch = recipe.get("launch") or {}
    if not launch.get("accelerate_config"):
        return f"python -m alignkit train {name}"
    return (f"accelerate launch --config_file alignkit/recipes/accelerate/{launch['accelerate_config']} "
            f"--num_processes {launch.get('num_processes', 1)} -m alignkit train {name}")


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Apply ``['--grpo.max_steps', '10', ...]`` (values parsed as YAML) to a copy of ``recipe``.

    YAML reads ``no``/``yes`` as booleans: quote strings like ``'"no"'`` (save_strategy).
    """
    recipe = copy.deepcopy(recipe)
    if len(overrides) % 2:
        raise ValueError(f"overrides come in '--section.key value' pairs, got {overrides}")
    for flag, raw in zip(overrides[::2], overrides[1::2], strict=True):
        if not flag.startswith("--") or "." not in flag:
            raise ValueError(f"override {flag!r} must look like --section.key (e.g. --grpo.max_steps)")
        section, key = flag[2:].split(".", 1)
        if section not in ("model", "task", "grpo"):
            raise ValueError(f"override {flag!r}: section {section!r} is not one of model, task, grpo")
        recipe.setdefault(section, {})[key] = yaml.safe_load(raw)
    return validate(recipe)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read, override and validate a recipe."""
    with open(find_recipe(path)) as f:
        recipe = yaml.safe_load(f)
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path} is not a YAML mapping")
    return apply_overrides(recipe, overrides or [])


def build_trainer(recipe: dict, *, output_dir: str | Path | None = None, model=None):
    """The ``trl.GRPOTrainer`` a recipe describes (model loaded unless one is passed)."""
    from trl import GRPOConfig

    from alignkit.models import load_policy, load_tokenizer
    from alignkit.tasks import build_task
    from alignkit.training import FastGRPOTrainer, checked_reward

    task = dict(recipe["task"])
    dataset, rewards = build_task(task.pop("name"), **task)
    spec = recipe["model"]
    if model is None:
        model = load_policy(spec["name"], quantization=spec.get("quantization"), lora=spec.get("lora"))
    args = dict(recipe["grpo"])
    if output_dir is not None:
        args["output_dir"] = str(output_dir)
    return FastGRPOTrainer(model=model, reward_funcs=[checked_reward(r) for r in rewards],
                       args=GRPOConfig(**args), train_dataset=dataset,
                       processing_class=load_tokenizer(spec["name"]))


def cpu_substitutes(recipe: dict, *, model: str = "smollm2-135m", n_train: int = 8) -> list[str]:
    """Overrides that make any recipe run on a CPU with the bundled model, for tests and dry runs:
    the bundled model instead of the hub one (quantisation and LoRA kept: bitsandbytes 4-bit
    works on CPU), no vLLM, no bf16 / gradient checkpointing, a tiny data set and one step."""
    groups = recipe["grpo"].get("num_generations", 8)
    return ["--model.name", model, "--task.n_train", str(n_train), "--grpo.use_vllm", "false",
            "--grpo.bf16", "false", "--grpo.gradient_checkpointing", "false",
            "--grpo.use_cpu", "true", "--grpo.max_steps", "1", "--grpo.max_completion_length", "8",
            "--grpo.num_generations", str(min(groups, 4)), "--grpo.per_device_train_batch_size",
            str(min(groups, 4)), "--grpo.gradient_accumulation_steps", "1",
            "--grpo.save_strategy", '"no"']


def plan_recipe(recipe: dict, *, prompt_tokens: int = 256, zero_stage: int | None = None,
                n_gpus: int | None = None):
    """The memory planner's estimate for a recipe (``alignkit.memory.plan_memory``).

    ZeRO stage and GPU count default to the recipe's ``launch`` section; a colocated vLLM
    engine (``grpo.use_vllm`` with ``vllm_mode: colocate``) reserves its memory share.
    """
    from alignkit.memory import plan_memory

    model, grpo = recipe["model"], recipe["grpo"]
    default_zero, default_gpus, offload = launch_settings(recipe)
    zero_stage = default_zero if zero_stage is None else zero_stage
    n_gpus = default_gpus if n_gpus is None else n_gpus
    vllm = grpo.get("vllm_mode", "colocate") if grpo.get("use_vllm") else None
    lora = model.get("lora")
    return plan_memory(model["name"], quant=model.get("quantization"),
                       lora_r=(lora or {}).get("r", 16) if lora else None,
                       seq_len=prompt_tokens + grpo.get("max_completion_length", 512),
                       generations=grpo.get("per_device_train_batch_size", 8),
                       grad_ckpt=grpo.get("gradient_checkpointing", True), zero_stage=zero_stage,
                       n_gpus=n_gpus, beta=grpo.get("beta", 0.0), vllm=vllm, offload=offload and zero_stage >= 2,
                       vllm_gpu_memory_utilization=grpo.get("vllm_gpu_memory_utilization", 0.3))
