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

Overrides use dotted keys: ``--grpo.max_steps 10 --model.name smollm2-135m`` (or
``--grpo.max_steps=10``). An unknown key is an error that names it and lists the valid keys; a
trainer value is checked against its TRL config field's type (``1e-4`` becomes a float) and the
key fields' ranges (:func:`check_values`), all before any model loads. Introduced with the
scale-out tools.
"""

from __future__ import annotations

import copy
import enum
import math
import re
import types
import typing
from dataclasses import fields
from pathlib import Path

import yaml

from alignkit.chapters.index import RECIPES_DIR  # the index knows where each chapter's recipes live

__all__ = ["RECIPES_DIR", "TRAINERS", "apply_overrides", "build_trainer", "check_values", "cpu_substitutes",
           "find_recipe", "launch_command", "launch_settings", "list_recipes", "load_recipe", "parse_overrides",
           "plan_recipe", "validate"]
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


# ranges of the key trainer fields, checked before anything loads: (test, what is accepted)
_RANGES: dict = {
    "max_steps": (lambda v: v >= 1, "a positive int (the number of optimiser steps)"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "temperature": (lambda v: v > 0, "> 0"),
    "beta": (lambda v: v >= 0, ">= 0"),
    "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: v >= 0, ">= 0 (0: no top-k truncation)"),
    "num_generations": (lambda v: v >= 2, ">= 2 (GRPO's advantages need a group)"),
    "per_device_train_batch_size": (lambda v: v >= 1, ">= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, ">= 1"),
    "max_completion_length": (lambda v: v >= 1, ">= 1"),
    "num_iterations": (lambda v: v >= 1, ">= 1"),
    "epsilon": (lambda v: v >= 0, ">= 0"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0"),
    "save_steps": (lambda v: v > 0, "> 0"),
    "logging_steps": (lambda v: v > 0, "> 0"),
    "seed": (lambda v: v >= 0, ">= 0"),
}
# GRPO fields with a fixed set of values (loss_type's is read from TRL's own help text)
_GRPO_CHOICES: dict = {"scale_rewards": ("group", "batch", "none", True, False),
                       "importance_sampling_level": ("token", "sequence"),
                       "vllm_mode": ("colocate", "server")}
_GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.x


def _supported_values(field) -> tuple[str, ...] | None:
    """The values a TRL config field's help lists after "Supported values are" (None if none)."""
    match = re.search(r"Supported values are:?\s*(.*?)\.(?:\s|$)", field.metadata.get("help", ""))
    values = tuple(re.findall(r"'([A-Za-z0-9_]+)'", match.group(1))) if match else ()
    return values or None


def _options(annotation) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _type_name(annotation) -> str:
    names = []
    for option in _options(annotation):
        base = typing.get_origin(option) or option
        names.append("null" if option is type(None) else getattr(base, "__name__", str(option)))
    return " or ".join(names)


_NO_VALUE = object()


def _coerce(value, annotation):
    """``value`` as a field of type ``annotation`` takes it, or ``_NO_VALUE`` when it cannot.

    Exact types first; then a numeric string or an int for a float field ("1e-4": YAML reads a
    mantissa without a dot as a string), an integer string or integral float for an int field.
    """
    options = _options(annotation)
    checkable = True
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None):
            if value is None:
                return None
        elif base is bool:
            if isinstance(value, bool):
                return value
        elif base is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif base is float:
            if isinstance(value, float):
                return value
        elif base is str:
            if isinstance(value, str):
                return value
        elif base in (list, tuple):
            if isinstance(value, (list, tuple)):
                return value
        elif base is dict:
            if isinstance(value, dict):
                return value
        elif isinstance(base, type) and issubclass(base, enum.Enum):
            if isinstance(value, str) and value in {m.value for m in base}:
                return value
        else:
            checkable = False  # a class we do not know how to check (e.g. an accelerate config)
    bases = {typing.get_origin(o) or o for o in options}
    if isinstance(value, bool):
        pass
    elif float in bases and isinstance(value, int):
        return float(value)
    elif float in bases and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif int in bases and isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    elif int in bases and isinstance(value, float) and value.is_integer():
        return int(value)
    return value if not checkable else _NO_VALUE


def check_values(trainer: str, section: dict) -> dict:
    """``section`` with each value checked against its TRL config field's type (numeric strings
    coerced for float fields: ``1e-4``) and the key fields' ranges; ``ValueError`` names the key,
    the value and what is accepted. Runs before the model loads."""
    config_cls = TRAINERS[trainer]()
    declared = {f.name: f for f in fields(config_cls)}
    checked = {}
    for key, value in section.items():
        field = declared.get(key)
        if field is None:
            checked[key] = value  # unknown keys are reported by validate
            continue
        annotation = field.type
        if isinstance(annotation, str):
            annotation = typing.get_type_hints(config_cls).get(key, typing.Any)
        enums = [o for o in _options(annotation) if isinstance(o, type) and issubclass(o, enum.Enum)]
        allowed = [m.value for e in enums for m in e]
        if enums and isinstance(value, str) and value not in allowed:  # e.g. lr_scheduler_type
            raise ValueError(f"{trainer}.{key}: {value!r} is not one of {', '.join(map(repr, allowed))} "
                             f"(trl.{config_cls.__name__}.{key})")
        coerced = _coerce(value, annotation)
        if coerced is _NO_VALUE:
            kind = _type_name(annotation)
            hint = ("; YAML reads no/yes/off/on as booleans: quote the word ('\"no\"')"
                    if isinstance(value, bool) and "str" in kind else "")
            raise ValueError(f"{trainer}.{key}: {value!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind} "
                             f"(trl.{config_cls.__name__}.{key}){hint}")
        if isinstance(coerced, float) and math.isnan(coerced):
            raise ValueError(f"{trainer}.{key}: nan is not a number")
        rule = _RANGES.get(key)
        if rule is not None and isinstance(coerced, (int, float)) and not isinstance(coerced, bool) \
                and not rule[0](coerced):
            raise ValueError(f"{trainer}.{key}: {value!r} is out of range; it must be {rule[1]}")
        choices = _GRPO_CHOICES.get(key) if trainer == "grpo" else None
        if trainer == "grpo" and key == "loss_type":
            choices = _supported_values(field) or _GRPO_LOSS_TYPES
        if choices is not None and coerced not in choices:
            raise ValueError(f"{trainer}.{key}: {value!r} is not one of {', '.join(map(repr, choices))} "
                             f"(trl.{config_cls.__name__}.{key})")
        checked[key] = coerced
    return checked


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
    recipe[trainer] = check_values(trainer, recipe[trainer])
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
    name = recipe["model"].get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model.name must be a model id, short name or folder, got {name!r}")
    lora = recipe["model"].get("lora")
    if lora is not None and not isinstance(lora, dict):
        raise ValueError(f"model.lora must be null or a mapping of peft LoraConfig fields, got {lora!r}")
    processes = (recipe.get("launch") or {}).get("num_processes", 1)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"launch.num_processes must be a positive int, got {processes!r}")
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


def parse_overrides(overrides: list[str]) -> list[tuple[str, str, object]]:
    """``['--grpo.max_steps', '10', '--grpo.beta=0.04']`` -> ``[('grpo', 'max_steps', 10), ...]``
    (values parsed as YAML; ``--key value`` and ``--key=value`` both work)."""
    parsed, i = [], 0
    while i < len(overrides):
        flag = overrides[i]
        if not isinstance(flag, str) or not flag.startswith("--") or "." not in flag.split("=", 1)[0]:
            raise ValueError(f"override {flag!r} must look like --section.key VALUE or --section.key=VALUE "
                             "(e.g. --grpo.max_steps 10)")
        if "=" in flag:
            flag, raw = flag.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(overrides):
                raise ValueError(f"override {flag!r} has no value (--section.key VALUE)")
            raw = overrides[i + 1]
            i += 2
        section, key = flag[2:].split(".", 1)
        if section not in ("model", "task", *TRAINERS):
            raise ValueError(f"override {flag!r}: section {section!r} is not one of model, task, "
                             f"{', '.join(TRAINERS)}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ValueError(f"override {flag}: cannot read {raw!r} as a YAML value ({err.problem})") from None
        parsed.append((section, key, value))
    return parsed


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Apply ``['--grpo.max_steps', '10', '--grpo.beta=0.04', ...]`` (values parsed as YAML) to a
    copy of ``recipe``, then :func:`validate` it (keys, types and ranges: before any model loads).

    YAML reads ``no``/``yes`` as booleans: quote strings like ``'"no"'`` (save_strategy).
    """
    recipe = copy.deepcopy(recipe)
    for section, key, value in parse_overrides(overrides):
        recipe.setdefault(section, {})[key] = value
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
    from alignkit.runtime import resolve_dtype
    from alignkit.tasks import build_task

    trainer = recipe["trainer"]
    spec, args = recipe["model"], dict(recipe[trainer])
    compute = resolve_dtype(spec.get("dtype", "auto"))
    out = str(output_dir or args.pop("output_dir", None) or f"runs/{recipe['chapter']}/{trainer}")
    args.pop("output_dir", None)
    # the TRL config first: its own checks (e.g. batch divisible by the group size) before the load
    preflight = {"grpo": training.grpo_config, "sft": training.sft_config, "reward": training.reward_config}
    preflight[trainer](out, compute=compute, **args)
    # seeded before the model and its LoRA adapter are created: same seed, same initial weights
    seed = args.get("seed", 0)
    task = dict(recipe["task"])
    dataset, rewards = build_task(task.pop("name"), **task)
    run = {"model_name": spec["name"], "task": dict(recipe["task"])}
    built = _build(trainer, spec, args, out, compute, seed, dataset, rewards, model, callbacks)
    built.alignkit_run = run  # saved as the run's configuration by alignkit.training.train
    return built


def _build(trainer, spec, args, out, compute, seed, dataset, rewards, model, callbacks):
    from alignkit import training
    from alignkit.models import load_policy, load_tokenizer

    if trainer == "reward":
        from alignkit.models import lora_config
        from alignkit.reward_model import load_reward_model

        if model is None:
            model, tokenizer = load_reward_model(spec["name"], freeze_backbone=spec.get("lora") is None,
                                                 seed=seed)
        else:
            tokenizer = load_tokenizer(spec["name"])
        peft = lora_config({"task_type": "SEQ_CLS", **spec["lora"]}) if spec.get("lora") else None
        return training.build_reward_trainer(model, tokenizer, dataset, output_dir=out, peft_config=peft,
                                             callbacks=callbacks, compute=compute, **args)
    if model is None:
        model = load_policy(spec["name"], quantization=spec.get("quantization"), lora=spec.get("lora"),
                            dtype=compute, seed=seed)
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
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ValueError(f"n_gpus must be a positive int, got {n_gpus!r}")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {zero_stage!r}")
    vllm = grpo.get("vllm_mode", "colocate") if grpo.get("use_vllm") else None
    lora = model.get("lora")
    return plan_memory(model["name"], quant=model.get("quantization"),
                       lora_r=(lora or {}).get("r", 16) if lora else None,
                       seq_len=prompt_tokens + grpo.get("max_completion_length", 512),
                       generations=grpo.get("per_device_train_batch_size", 8),
                       grad_ckpt=grpo.get("gradient_checkpointing", True), zero_stage=zero_stage,
                       n_gpus=n_gpus, beta=grpo.get("beta", 0.0), vllm=vllm, offload=offload and zero_stage >= 2,
                       vllm_gpu_memory_utilization=grpo.get("vllm_gpu_memory_utilization", 0.3))
