"""Recipes: one YAML per chapter x scale, parsed with command-line overrides, built into a trainer.

Layout of a recipe (see ``alignkit/recipes/*/``)::

    chapter: 01_bleuberi
    trainer: grpo                  # grpo | sft | reward: which builder of alignkit.training
    model: {name: ..., quantization: 4bit | null, lora: {r: 16, ...} | null, dtype: auto}
    task:  {name: bleuberi, n_train: 1000, seed: 0, ...}     # alignkit.tasks
    grpo:  {the trl.GRPOConfig fields of this scale}          # the section is named after `trainer`
    launch: {accelerate_config: zero3.yaml, num_processes: 8}   # optional: how it is meant to run

The trainer section holds what this scale decides (batch, lengths, steps, learning rate, memory
settings). The paper-critical GRPO fields are not repeated in the YAML: they come from the
chapter's ``PAPER_GRPO`` (``alignkit.chapters.index.paper_grpo``) on top of
``alignkit.training.GRPO_DEFAULTS``, and a recipe value overrides them (a departure, commented in
the YAML). :func:`load_recipe` returns the merged fields. Precision is never a recipe field:
``model.dtype`` (``auto``, the policy of ``alignkit.runtime``, or a dtype it allows) decides it.

Overrides use dotted keys: ``--grpo.max_steps 10 --model.name smollm2-135m``. An unknown key is
an error that names it and lists the valid keys. Introduced with the scale-out tools.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
MODEL_KEYS = ("name", "quantization", "lora", "dtype")
LAUNCH_KEYS = ("accelerate_config", "num_processes")


def _grpo_config_class():
    from trl import GRPOConfig

    return GRPOConfig


def _sft_config_class():
    from trl import SFTConfig

    return SFTConfig


def _reward_config_class():
    from trl import RewardConfig

    return RewardConfig


# trainer type -> the TRL config class its section is checked against. The builders are in
# build_trainer below; a new type (DPO, say) adds one entry here and one builder there.
TRAINERS = {"grpo": _grpo_config_class, "sft": _sft_config_class, "reward": _reward_config_class}
SECTIONS = ("chapter", "trainer", "model", "task", "launch", "notes", *TRAINERS)


def trainer_fields(trainer: str) -> list[str]:
    """The valid keys of a recipe's section for ``trainer`` (its TRL config's fields)."""
    return sorted(f.name for f in fields(TRAINERS[trainer]()))


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
    from alignkit.chapters.index import get_chapter
    from alignkit.tasks import task_arguments

    unknown = sorted(set(recipe) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown recipe section(s) {unknown}; valid: {list(SECTIONS)}")
    trainer = recipe.get("trainer")
    if trainer not in TRAINERS:
        raise ValueError(f"trainer {trainer!r} is not supported; valid: {sorted(TRAINERS)}")
    for section in ("chapter", "model", "task", trainer):
        if section not in recipe:
            raise ValueError(f"recipe is missing the {section!r} section")
    get_chapter(recipe["chapter"])
    others = sorted(set(TRAINERS) & set(recipe) - {trainer})
    if others:
        raise ValueError(f"recipe for trainer {trainer!r} has a section for another trainer: {others}")
    checks = {"model": list(MODEL_KEYS), "task": ["name", *task_arguments(recipe["task"].get("name", ""))],
              trainer: trainer_fields(trainer), "launch": list(LAUNCH_KEYS)}
    for section, valid in checks.items():
        bad = sorted(set(recipe.get(section, {})) - set(valid))
        if bad:
            raise ValueError(f"unknown key(s) {[f'{section}.{k}' for k in bad]}; "
                             f"valid keys of {section!r}: {valid}")
    fixed = sorted({"bf16", "fp16"} & set(recipe[trainer]))
    if fixed:
        raise ValueError(f"{[f'{trainer}.{k}' for k in fixed]}: precision follows alignkit.runtime's policy; "
                         "set model.dtype ('auto', 'float32', 'bfloat16', 'float16') instead")
    if recipe["model"].get("quantization") not in (None, "4bit"):
        raise ValueError(f"model.quantization must be null or '4bit', got {recipe['model']['quantization']!r}")
    dtype = recipe["model"].get("dtype", "auto")
    if dtype != "auto" and dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"model.dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    # whether this machine runs that dtype natively is checked when the trainer is built
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
        if section not in ("model", "task", *TRAINERS):
            raise ValueError(f"override {flag!r}: section {section!r} is not one of model, task, "
                             f"{', '.join(TRAINERS)}")
        recipe.setdefault(section, {})[key] = yaml.safe_load(raw)
    return validate(recipe)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read, override and validate a recipe; a GRPO recipe's section comes back merged with its
    chapter's paper fields and ``GRPO_DEFAULTS`` (so what you see is what trains)."""
    from alignkit.chapters.index import paper_grpo
    from alignkit.training import grpo_settings

    with open(find_recipe(path)) as f:
        recipe = yaml.safe_load(f)
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path} is not a YAML mapping")
    recipe = apply_overrides(recipe, overrides or [])
    if recipe["trainer"] == "grpo":
        recipe["grpo"] = grpo_settings(paper=paper_grpo(recipe["chapter"]), **recipe["grpo"])
    return recipe


def build_trainer(recipe: dict, *, output_dir: str | Path | None = None, model=None, callbacks=None):
    """The TRL trainer a (loaded) recipe describes, through the one builder of its trainer type.

    The model is loaded unless one is passed; ``model.dtype`` is resolved against the precision
    policy here (a dtype this machine would emulate is refused) and both the weights and the
    trainer's mixed precision follow it.
    """
    from alignkit import training
    from alignkit.models import load_policy, load_tokenizer
    from alignkit.runtime import resolve_dtype
    from alignkit.tasks import build_task

    trainer = recipe["trainer"]
    spec, args = recipe["model"], dict(recipe[trainer])
    compute = resolve_dtype(spec.get("dtype", "auto"))
    out = str(output_dir or args.pop("output_dir", None) or f"runs/{recipe['chapter']}/{trainer}")
    args.pop("output_dir", None)
    task = dict(recipe["task"])
    dataset, rewards = build_task(task.pop("name"), **task)
    if trainer == "reward":
        from alignkit.models import lora_config
        from alignkit.reward_model import load_reward_model

        if model is None:
            model, tokenizer = load_reward_model(spec["name"], freeze_backbone=spec.get("lora") is None)
        else:
            tokenizer = load_tokenizer(spec["name"])
        peft = lora_config({"task_type": "SEQ_CLS", **spec["lora"]}) if spec.get("lora") else None
        return training.build_reward_trainer(model, tokenizer, dataset, output_dir=out, peft_config=peft,
                                             callbacks=callbacks, compute=compute, **args)
    if model is None:
        model = load_policy(spec["name"], quantization=spec.get("quantization"), lora=spec.get("lora"),
                            dtype=compute)
    tokenizer = load_tokenizer(spec["name"])
    if trainer == "sft":
        return training.build_sft_trainer(model, tokenizer, dataset, output_dir=out, callbacks=callbacks,
                                          compute=compute, **args)
    return training.build_grpo_trainer(model, rewards, dataset, output_dir=out, tokenizer=tokenizer,
                                       callbacks=callbacks, compute=compute, **args)


def cpu_substitutes(recipe: dict, *, model: str = "smollm2-135m", n_train: int = 8) -> list[str]:
    """Overrides that make any recipe run on a CPU with the bundled model, for tests and dry runs:
    the bundled model instead of the hub one (quantisation and LoRA kept: bitsandbytes 4-bit
    works on CPU), no vLLM, the precision policy's dtype, no gradient checkpointing, a tiny data
    set and one step."""
    groups = recipe["grpo"].get("num_generations", 8)
    return ["--model.name", model, "--task.n_train", str(n_train), "--grpo.use_vllm", "false",
            "--grpo.gradient_checkpointing", "false", "--model.dtype", "auto",
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
