"""What every trainer builder shares: field checks, the precision fields, checked rewards, resume.

The builders themselves live one per trainer type: :mod:`alignkit.training.grpo`,
:mod:`alignkit.training.sft`, :mod:`alignkit.training.reward`. Introduced in chapter 0.
"""

from __future__ import annotations

import math
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
    checkpointing is off (it only costs time there) and ``use_cpu`` is on.
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
        settings.update(use_cpu=True, gradient_checkpointing=False)
    return config_cls(**settings, **trainer_precision(compute))


def checked_reward(fn: Callable) -> Callable:
    """Wrap a TRL reward function so that a NaN, inf or wrong-length result raises a clear error.

    TRL would otherwise average a NaN into the advantages and train on garbage silently.
    """

    def wrapper(prompts=None, completions=None, **kwargs):
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
    return wrapper


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir`` (None when there is none).

    The Trainer writes ``trainer_state.json`` last, so a folder without it is a save that was
    interrupted; it is skipped and the run resumes from the checkpoint before it.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    done = [p for p in output_dir.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def train(trainer, *, resume: bool = True):
    """``trainer.train()``, resuming from the last complete checkpoint in its output folder.

    Save checkpoints with ``save_strategy="steps", save_steps=N`` (``grpo_config`` overrides).
    """
    checkpoint = last_checkpoint(trainer.args.output_dir) if resume else None
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
    """A short SHA-256 of the trainable parameters: equal on every rank after a DDP step."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
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
