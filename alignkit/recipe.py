"""Recipes: one YAML per chapter x scale, parsed with command-line overrides, built into a trainer.

Layout of a recipe (see ``alignkit/recipes/*/``)::

    chapter: 00_start_here
    trainer: grpo
    model: {name: ..., quantization: 4bit | null, lora: {r: 16, ...} | null}
    task:  {name: brevity, n_train: 1000, seed: 0, ...}      # alignkit.tasks
    grpo:  {every trl.GRPOConfig field the paper cares about, with the paper's value quoted}

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
            "notes": str}
MODEL_KEYS = ("name", "quantization", "lora", "dtype")


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
              "grpo": grpo_fields()}
    for section, valid in checks.items():
        bad = sorted(set(recipe[section]) - set(valid))
        if bad:
            raise ValueError(f"unknown key(s) {[f'{section}.{k}' for k in bad]}; "
                             f"valid keys of {section!r}: {valid}")
    if recipe["model"].get("quantization") not in (None, "4bit"):
        raise ValueError(f"model.quantization must be null or '4bit', got {recipe['model']['quantization']!r}")
    return recipe


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
    from trl import GRPOConfig, GRPOTrainer

    from alignkit.models import load_policy, load_tokenizer
    from alignkit.tasks import build_task
    from alignkit.training import checked_reward

    task = dict(recipe["task"])
    dataset, rewards = build_task(task.pop("name"), **task)
    spec = recipe["model"]
    if model is None:
        model = load_policy(spec["name"], quantization=spec.get("quantization"), lora=spec.get("lora"))
    args = dict(recipe["grpo"])
    if output_dir is not None:
        args["output_dir"] = str(output_dir)
    return GRPOTrainer(model=model, reward_funcs=[checked_reward(r) for r in rewards],
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


def plan_recipe(recipe: dict, *, prompt_tokens: int = 256, zero_stage: int = 0, n_gpus: int = 1):
    """The memory planner's estimate for a recipe (``alignkit.memory.plan_memory``)."""
    from alignkit.memory import plan_memory

    model, grpo = recipe["model"], recipe["grpo"]
    lora = model.get("lora")
    return plan_memory(model["name"], quant=model.get("quantization"),
                       lora_r=(lora or {}).get("r", 16) if lora else None,
                       seq_len=prompt_tokens + grpo.get("max_completion_length", 512),
                       generations=grpo.get("per_device_train_batch_size", 8),
                       grad_ckpt=grpo.get("gradient_checkpointing", True), zero_stage=zero_stage,
                       n_gpus=n_gpus, beta=grpo.get("beta", 0.0))
