"""What every trainer builder shares: field checks, the precision fields, checked rewards, resume.

The builders themselves live one per trainer type: :mod:`alignkit.training.grpo`,
:mod:`alignkit.training.sft`, :mod:`alignkit.training.reward`. Introduced in chapter 0.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path

import torch

from alignkit.runtime import pick_device, trainer_precision

PRECISION_FIELDS = ("bf16", "fp16")



def config_fields(config_cls) -> set[str]:
    """The field names of a transformers / TRL config dataclass (``GRPOConfig``, ``SFTConfig``...)."""
    return {f.name for f in fields(config_cls)}


def make_config(config_cls, settings: Mapping, *, compute: torch.dtype | None = None):
    """``config_cls(**settings)`` with the precision policy's mixed-precision fields and CPU flags.

    Unknown fields raise ``TypeError`` naming them. ``bf16``/``fp16`` may not be set by hand: they
    follow ``alignkit.runtime`` (``compute``, default the policy's dtype here), so a T4 never trains
    in emulated bf16 and a CPU without bf16 units never autocasts to it. On a CPU gradient
    checkpointing is off (it only costs time there), ``use_cpu`` is on, and the data loader does
    not pin memory (there is nothing to pin it for; torch warns at every step otherwise).
    """
    valid = config_fields(config_cls)
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise TypeError(f"unknown {config_cls.__name__} field(s) {unknown}; see trl.{config_cls.__name__}")
    fixed = sorted(set(settings) & set(PRECISION_FIELDS))
    if fixed:
        raise ValueError(f"{fixed} are set by the precision policy (alignkit.runtime.pick_dtype); "
                         "choose a dtype with the model's `dtype` ('auto', 'float32', ...) instead")
    on_gpu = pick_device().type == "cuda"
    settings = dict(settings)
    if not on_gpu:
        settings.update(use_cpu=True, gradient_checkpointing=False, dataloader_pin_memory=False)
    config = config_cls(**settings, **trainer_precision(compute))
    if not (config.bf16 or config.fp16):
        # float32 by the policy: an accelerate config's `mixed_precision: bf16` (inherited through
        # ACCELERATE_MIXED_PRECISION) must not turn it into emulated bf16
        config.mixed_precision = "no"
    return config


def without_printed_logs(trainer):
    """``trainer`` without transformers' ``PrinterCallback`` when its progress bar is off.

    With ``disable_tqdm`` (executed notebooks run with ``TQDM_DISABLE=1``), a Trainer prints
    every log as a dict instead of a bar: a wall of ``{'loss': ...}`` lines in a notebook. The logs
    stay in ``trainer.state.log_history`` and go to ``report_to`` (TensorBoard) as before.
    """
    from transformers.trainer_callback import PrinterCallback

    if trainer.args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
    return trainer


def checked_reward(fn: Callable) -> Callable:
    """Wrap a TRL reward function so that a NaN, inf or wrong-length result raises a clear error.

    TRL would otherwise average a NaN into the advantages and train on garbage silently. Once the
    trainer has set the wrapper's ``stop_token_ids`` (``FastGRPOTrainer`` does: its EOS ids and
    the pad id), each call also passes ``is_truncated``: per completion, whether it ended without
    one of them, i.e. hit ``max_completion_length`` (TRL's own test for ``clipped_ratio``).
    LIMR's reward scores those -1, as the paper does; reward functions take ``**kwargs`` in TRL,
    so the others ignore it.
    """

    def wrapper(prompts=None, completions=None, **kwargs):
        ids = kwargs.get("completion_ids")
        if wrapper.stop_token_ids is not None and ids is not None and "is_truncated" not in kwargs:
            kwargs["is_truncated"] = [len(seq) > 0 and seq[-1] not in wrapper.stop_token_ids for seq in ids]
        values = fn(prompts=prompts, completions=completions, **kwargs)
        values = list(values)
        if completions is not None and len(values) != len(completions):
            raise ValueError(f"reward function {name!r} returned {len(values)} values for "
                             f"{len(completions)} completions")
        bad = [v for v in values if v is not None and not math.isfinite(float(v))]
        if bad:
            raise ValueError(f"reward function {name!r} returned non-finite rewards {bad[:5]}; "
                             "rewards must be finite floats (or None to skip a sample)")
        return values

    name = getattr(fn, "__name__", type(fn).__name__)
    wrapper.__name__ = name  # TRL logs each reward under its function's name
    wrapper.__doc__ = fn.__doc__
    wrapper.stop_token_ids = None
    return wrapper


def _checkpoint_number(path: Path) -> int:
    return int(path.name.split("-")[-1])


def read_trainer_state(checkpoint: str | Path) -> dict | None:
    """A checkpoint's ``trainer_state.json`` as a dict, or None when it is missing, empty or
    truncated (a save that was interrupted, or a disk that filled up)."""
    path = Path(checkpoint) / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("global_step"), int) else None


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir`` (None when there is none).

    The Trainer writes ``trainer_state.json`` last, so a folder without it is a save that was
    interrupted; it is skipped and the run resumes from the checkpoint before it. A folder whose
    ``trainer_state.json`` is empty or truncated is skipped too, with a warning naming it.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = sorted((p for p in output_dir.glob("checkpoint-*")
                         if p.is_dir() and p.name.split("-")[-1].isdigit()),
                        key=_checkpoint_number, reverse=True)
    for path in candidates:
        if not (path / "trainer_state.json").exists():
            continue  # an interrupted save: the Trainer writes trainer_state.json last
        if read_trainer_state(path) is None:
            warnings.warn(f"skipping checkpoint {path}: its trainer_state.json is empty or truncated; "
                          "resuming from the checkpoint before it", stacklevel=2)
            continue
        return str(path)
    return None


# ---------------------------------------------------------------------------------------------
# The run's configuration, saved in its output folder so that a resume can check it
# ---------------------------------------------------------------------------------------------

RUN_CONFIG = "alignkit_run.json"
# TrainingArguments fields that change what a run computes (the rest is bookkeeping: logging,
# saving, output folder, hub, dataloader workers, memory switches such as gradient checkpointing)
RUN_TRAINING_FIELDS = (
    "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "optim", "optim_args",
    "max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
    "seed", "data_seed", "bf16", "fp16", "label_smoothing_factor", "neftune_noise_alpha",
    "train_sampling_strategy", "average_tokens_across_devices")
# fields of the TRL configs themselves that are bookkeeping too (prefixes and names)
_BOOKKEEPING_PREFIXES = ("log_", "vllm_server_", "vllm_group_", "wandb_")
_BOOKKEEPING_NAMES = {
    "num_completions_to_print", "ds3_gather_for_generation", "vllm_gpu_memory_utilization",
    "vllm_enable_sleep_mode", "vllm_tensor_parallel_size", "use_transformers_paged",
    "use_transformers_continuous_batching", "transformers_continuous_batching_config",
    "cache_implementation", "dataset_num_proc", "activation_offloading", "trust_remote_code"}
# saved but not compared: raising max_steps is how a finished run is extended
EXTENDABLE_FIELDS = ("max_steps",)
_LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "use_dora",
                "init_lora_weights", "modules_to_save", "task_type")


RESTART_HINT = "To start over, pass restart=True (command line: --restart), which clears its checkpoints."


class RunConfigMismatch(ValueError):
    """Resuming a run folder with a configuration other than the one it was started with."""


def _plain(value):
    """``value`` with sets and tuples as (sorted) lists, enums as their values, non-finite floats
    and unknown objects as strings: what a JSON file gives back, and comparable."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    inner = getattr(value, "value", None)  # enums (SchedulerType, OptimizerNames...)
    return _plain(inner) if isinstance(inner, (str, int, float)) else str(value)


def run_arguments(args) -> dict:
    """The fields of a TRL / transformers config that define a run (bookkeeping dropped)."""
    from transformers import TrainingArguments

    base = config_fields(TrainingArguments)
    values = args.to_dict()
    own = [n for n in values if n not in base and not n.startswith(_BOOKKEEPING_PREFIXES)
           and n not in _BOOKKEEPING_NAMES]
    keep = [n for n in RUN_TRAINING_FIELDS if n in values] + sorted(own)
    return {n: _plain(values[n]) for n in keep}


def describe_model(model, name: str | None = None) -> dict:
    """``{name, quantization, lora}`` of a policy (LoRA as its peft config's defining fields)."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    quantization = ("4bit" if getattr(base, "is_loaded_in_4bit", False) else
                    "8bit" if getattr(base, "is_loaded_in_8bit", False) else None)
    lora = None
    if isinstance(model, PeftModel):
        config = model.peft_config.get("default") or next(iter(model.peft_config.values()))
        lora = {k: _plain(getattr(config, k)) for k in _LORA_FIELDS if hasattr(config, k)}
    name = name or getattr(getattr(base, "config", None), "_name_or_path", None)
    return {"name": name, "quantization": quantization, "lora": lora}


def run_config(trainer) -> dict:
    """What defines ``trainer``'s run: its config's run fields, the model (name, quantisation,
    LoRA), the task and rewards, and the number of processes. Saved as ``RUN_CONFIG``.

    A builder that knows more than the trainer does (the recipe's model name and task) puts it
    in ``trainer.alignkit_run = {"model_name": ..., "task": {...}}``.
    """
    extra = getattr(trainer, "alignkit_run", None) or {}
    model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
    config = {"config": type(trainer.args).__name__, "args": run_arguments(trainer.args),
              "model": describe_model(model, extra.get("model_name")),
              "task": _plain(extra.get("task")),
              "rewards": list(getattr(trainer, "reward_func_names", []) or []),
              "num_processes": trainer.accelerator.num_processes}
    return _plain(config)


def _flatten(config: dict) -> dict:
    """``{"args": {"beta": 0}, "model": {"lora": {"r": 16}}}`` -> ``{"beta": 0, "model.lora.r": 16}``."""
    flat: dict = {}

    def walk(prefix, value):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for section, value in config.items():
        walk("" if section == "args" else section, value)
    return flat


def config_differences(saved: dict, current: dict) -> list[str]:
    """``["learning_rate 5e-05 -> 0.0001", ...]``: each field whose value differs (old -> new),
    except :data:`EXTENDABLE_FIELDS` (a longer ``max_steps`` continues a finished run)."""
    old, new = _flatten(saved), _flatten(current)
    missing = object()
    return [f"{k} {old.get(k, 'unset')!s} -> {new.get(k, 'unset')!s}" for k in sorted(set(old) | set(new))
            if k not in EXTENDABLE_FIELDS and old.get(k, missing) != new.get(k, missing)]


def read_run_config(output_dir: str | Path) -> dict | None:
    """The configuration saved in a run folder, or None (no run started there, or unreadable)."""
    try:
        saved = json.loads((Path(output_dir) / RUN_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def clear_run(output_dir: str | Path) -> list[str]:
    """Remove what a run left in ``output_dir`` (checkpoints, its saved configuration, the rank
    summaries) so that it starts over; other files are kept. Returns the names removed."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    removed = []
    for path in sorted(output_dir.iterdir()):
        ours = (path.is_dir() and path.name.startswith("checkpoint-")) or path.name == RUN_CONFIG or \
            (path.name.startswith("rank") and path.suffix == ".json")
        if ours:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path.name)
    return removed


def _target_steps(trainer, state: dict) -> int:
    """The step a run ends at: ``args.max_steps`` when set, else what the Trainer computed from
    ``num_train_epochs`` (saved in the checkpoint's state)."""
    return trainer.args.max_steps if trainer.args.max_steps > 0 else int(state.get("max_steps", 0))


def _finished(trainer, checkpoint: str):
    """Load a finished run's last checkpoint into ``trainer`` and return its ``TrainOutput``."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    print(f"alignkit: run in {trainer.args.output_dir} is already finished (step {state.global_step} of "
          f"{_target_steps(trainer, {'max_steps': state.max_steps})}, {Path(checkpoint).name}); "
          f"nothing to train. {RESTART_HINT}")
    if not (getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)):
        trainer._load_from_checkpoint(checkpoint)  # the finished weights, not the fresh ones
    trainer.state = state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    loss = next((h["train_loss"] for h in reversed(state.log_history) if "train_loss" in h),
                sum(losses) / len(losses) if losses else float("nan"))
    return TrainOutput(state.global_step, loss, {"already_finished": True})


def train(trainer, *, resume: bool = True, restart: bool = False):
    """``trainer.train()``, resuming from the last complete checkpoint in its output folder.

    Save checkpoints with ``save_strategy="steps", save_steps=N`` (``grpo_config`` overrides).

    * The run's configuration (:func:`run_config`) is saved atomically as ``RUN_CONFIG`` in the
      output folder. Resuming with a different one (a new learning rate, beta, model...) raises
      :class:`RunConfigMismatch` naming each field (old -> new) instead of mixing two runs.
    * A run whose last checkpoint reached ``max_steps`` is finished: nothing is trained, the
      checkpoint's weights and state are loaded into ``trainer`` and a line says so. A larger
      ``max_steps`` (the one field that may change) continues it.
    * ``restart=True`` clears the folder's checkpoints and saved configuration first;
      ``resume=False`` trains from scratch without reading them (and overwrites the configuration).
    """
    from alignkit.io import atomic_write_json

    output_dir = Path(trainer.args.output_dir)
    main = trainer.is_world_process_zero()
    if restart:
        if main:
            clear_run(output_dir)
        trainer.accelerator.wait_for_everyone()
    config = run_config(trainer)
    checkpoint = last_checkpoint(output_dir) if resume and not restart else None
    if checkpoint is not None:
        saved = read_run_config(output_dir)
        differences = config_differences(saved, config) if saved is not None else []
        if differences:
            raise RunConfigMismatch(f"{output_dir} holds a run with another configuration "
                                    f"({'; '.join(differences)}); resume it with the same settings, "
                                    f"choose another output folder, or start over. {RESTART_HINT}")
        state = read_trainer_state(checkpoint)
        target = _target_steps(trainer, state)
        if target > 0 and state["global_step"] >= target:
            return _finished(trainer, checkpoint)
    if main:
        atomic_write_json(output_dir / RUN_CONFIG, config)
    return trainer.train(resume_from_checkpoint=checkpoint)


def log_frame(trainer):
    """The per-step training log (reward, KL, entropy, lengths...) as a pandas DataFrame."""
    import pandas as pd

    rows = [h for h in trainer.state.log_history if "step" in h and "train_runtime" not in h]
    return pd.DataFrame(rows).set_index("step") if rows else pd.DataFrame()


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters (to check that training changed them)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def changed_fraction(before: dict[str, torch.Tensor], model) -> float:
    """The fraction of the tensors in ``before`` that differ in ``model`` now."""
    now = dict(model.named_parameters())
    changed = sum(not torch.equal(now[n].detach(), t) for n, t in before.items())
    return changed / max(len(before), 1)


def trainable_digest(model) -> str:
    """A short SHA-256 of the trainable parameters: equal on every rank after a DDP step.

    Under FSDP2 a parameter is a sharded ``DTensor``; its full tensor is gathered first (a
    collective: every rank calls this at the same point), so the digest covers whole weights.
    """
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            p = p.detach()
            if hasattr(p, "full_tensor"):
                p = p.full_tensor()
            h.update(name.encode())
            h.update(p.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def write_rank_summary(trainer, *, stage: str, initial: dict | None = None) -> dict:
    """Write ``<output_dir>/rank<R>-<stage>.json`` (step, world size, weight digest) atomically.

    Lets a user, and the distributed test, check that every rank finished with identical weights.
    """
    from alignkit.io import atomic_write_json

    state = trainer.accelerator.state
    summary = {"rank": state.process_index, "world_size": state.num_processes,
               "global_step": trainer.state.global_step, "digest": trainable_digest(trainer.model)}
    if initial is not None:
        summary["changed"] = summary["digest"] != initial["digest"]
    atomic_write_json(Path(trainer.args.output_dir) / f"rank{state.process_index}-{stage}.json", summary)
    return summary
