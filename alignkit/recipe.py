"""Recipes: one YAML per chapter x scale, parsed with command-line overrides, built into a trainer.

Layout of a recipe (see ``alignkit/recipes/*/``)::

    chapter: 01_bleuberi
    trainer: grpo                  # grpo | sft | reward: which builder of alignkit.training
    model: {name: ..., quantization: 4bit | null, lora: {r: 16, ...} | null, dtype: auto}
    task:  {name: bleuberi, n_train: 1000, seed: 0, ...}     # alignkit.tasks
    grpo:  {the trl.GRPOConfig fields of this scale}          # the section is named after `trainer`
    launch: {accelerate_config: zero3.yaml, num_processes: 8}   # optional: how it is meant to run
    select: {k: 5000, ...}         # optional: `python -m alignkit select` (chapter 1's hard subset)

The trainer section holds what this scale decides (batch, lengths, steps, learning rate, memory
settings). The paper-critical GRPO fields are not repeated in the YAML: they come from the
chapter's ``PAPER_GRPO`` (``alignkit.chapters.index.paper_grpo``) on top of
``alignkit.training.GRPO_DEFAULTS``, and a recipe value overrides them (a departure, commented in
the YAML). :func:`load_recipe` returns the merged fields. Precision is never a recipe field:
``model.dtype`` (``auto``, the policy of ``alignkit.runtime``, or a dtype it allows) decides it.

Overrides use dotted keys: ``--grpo.max_steps 10 --model.name smollm2-135m`` (or
``--grpo.max_steps=10``). An unknown key is an error that names it and lists the valid keys; a
trainer value is checked against its TRL config field's type (``1e-4`` becomes a float) and the
key fields' ranges (:func:`alignkit.recipe_values.check_values`), all before any model loads. Introduced with the
scale-out tools.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

import yaml

from alignkit.chapters.index import RECIPES_DIR  # the index knows where each chapter's recipes live
from alignkit.recipe_values import check_values

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
SECTIONS = ("chapter", "trainer", "model", "task", "launch", "select", "notes", *TRAINERS)


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
    recipe[trainer] = check_values(trainer, TRAINERS[trainer](), recipe[trainer])
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
    if not isinstance(recipe.get("select") or {}, dict):
        raise ValueError(f"select must be a mapping of selection settings, got {recipe['select']!r}")
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
        if section not in ("model", "task", "select", *TRAINERS):
            raise ValueError(f"override {flag!r}: section {section!r} is not one of model, task, select, "
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
                            dtype=compute, seed=seed, for_training=True)
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
    set and one step. A task that trains on a selected subset (``task.subset``) takes its pool
    instead: ``python -m alignkit select`` is tested on its own."""
    groups = recipe["grpo"].get("num_generations", 8)
    pool = ["--task.subset", "null"] if recipe["task"].get("subset") else []
    return [*pool, "--model.name", model, "--task.n_train", str(n_train), "--grpo.use_vllm", "false",
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
