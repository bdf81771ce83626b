"""Build TRL trainers from a scale (or a recipe) with every paper-critical field set explicitly.

TRL changes its defaults between releases (GRPO's beta, loss type, bf16, gradient
checkpointing...), so nothing here relies on them: ``grpo_config`` writes each field down.
Introduced in chapter 0 (one GRPO step end to end); chapters 1-3 train through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from trl import GRPOTrainer

from alignkit.models import load_policy, load_tokenizer
from alignkit.runtime import cpu_has_fast_bf16, pick_device
from alignkit.scale import Scale


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


def grpo_config(scale: Scale, output_dir: str | Path, *, seed: int = 0, beta: float = 0.0,
                **overrides):
    """A ``trl.GRPOConfig`` for ``scale`` with the fields that matter written out explicitly.

    Each override must be a real ``GRPOConfig`` field; an unknown one raises ``TypeError``
    naming it. On a CPU: float32, no gradient checkpointing (it only costs time there).
    """
    from dataclasses import fields

    from trl import GRPOConfig

    valid = {f.name for f in fields(GRPOConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(f"unknown GRPOConfig field(s) {unknown}; see trl.GRPOConfig for valid fields")
    on_gpu = pick_device().type == "cuda"
    # bfloat16 autocast (float32 master weights) on GPUs that support it and on CPUs with native
    # bf16 units (AMX / AVX512-BF16); elsewhere bf16 is emulated and several times slower than fp32
    bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_fast_bf16()
    settings = dict(
        output_dir=str(output_dir),
        seed=seed,
        # the GRPO essentials: group size, sampling, lengths, KL and loss
        num_generations=scale.num_generations,  # G completions per prompt
        per_device_train_batch_size=scale.num_generations,  # completions per device step: 1 prompt
        gradient_accumulation_steps=1,
        max_completion_length=scale.max_completion_length,
        temperature=1.0,  # GRPO samples at temperature 1 (DeepSeekMath)
        top_p=1.0,
        beta=beta,  # KL coefficient; 0 skips the reference model entirely
        loss_type="grpo",  # the original per-sequence length normalisation (TRL default is "dapo")
        scale_rewards="group",  # advantages = (r - mean) / std within each group
        epsilon=0.2,  # PPO-style clip range
        num_iterations=1,  # one gradient step per batch of generations: on-policy
        learning_rate=1e-4 if scale.lora else 1e-6,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_steps=scale.max_steps,
        # precision and memory: explicit, since TRL defaults bf16=True and checkpointing=True
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=on_gpu,
        use_cpu=not on_gpu,
        # bookkeeping
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=False,
        remove_unused_columns=False,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _mergeable_lora(model) -> bool:
    """True for an unquantised PEFT LoRA model whose adapters can be merged exactly enough."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        return False
    quantized = getattr(model.get_base_model(), "is_loaded_in_4bit", False) or \
        getattr(model.get_base_model(), "is_loaded_in_8bit", False)
    return not quantized


@contextmanager
def merged_adapters(model) -> Iterator:
    """Merge a LoRA adapter into the base weights for the duration of the block, then unmerge.

    Generation with an unmerged adapter runs two extra small matmuls (and dropout) per adapted
    layer per token; on a CPU that is ~30-40% of the rollout time. Merged, the model samples at
    the speed of the plain base model and gives the same distribution (up to float rounding: the
    unmerge subtracts the same product, so the base weights drift by ~1 ulp per cycle). A
    4-bit base (QLoRA) is left unmerged: merging into NF4 weights would requantise them.
    Used by :class:`FastGRPOTrainer` (issue: fast GRPO on a laptop CPU).
    """
    if not _mergeable_lora(model):
        yield model
        return
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()


class FastGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` that samples its rollouts with the LoRA adapter merged.

    Everything else (loss, advantages, logging, checkpoints, distributed training) is TRL's own.
    Merging is skipped with vLLM (which syncs its own weights), DeepSpeed and FSDP (sharded
    weights) and 4-bit bases. ``build_grpo_trainer`` and the recipe launcher build this class.
    """

    def _generate_single_turn(self, *args, **kwargs):
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if self.use_vllm or sharded:
            return super()._generate_single_turn(*args, **kwargs)
        with merged_adapters(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(*args, **kwargs)


def build_grpo_trainer(model, reward_funcs: Callable | Sequence[Callable], train_dataset, *,
                       scale: Scale, output_dir: str | Path, seed: int = 0, beta: float = 0.0,
                       tokenizer=None, callbacks: Sequence | None = None, **config_overrides):
    """A ready :class:`FastGRPOTrainer`: the policy (LoRA / 4-bit as the scale says), checked rewards.

    Args:
        model: a short name or hub id (loaded with ``load_policy`` as ``scale`` says) or a model.
        reward_funcs: one TRL reward function or a list (each wrapped by ``checked_reward``).
        train_dataset: a ``datasets.Dataset`` with a ``prompt`` column (plain or conversational).
        scale: sizes and model settings; ``config_overrides`` go to ``grpo_config``.
    """
    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty; GRPO needs at least one prompt")
    if "prompt" not in train_dataset.column_names:
        raise ValueError(f"train_dataset needs a 'prompt' column, has {train_dataset.column_names}")
    name = model if isinstance(model, str) else None
    if name is not None:
        model = load_policy(name, quantization=scale.quantization, lora=True if scale.lora else None)
    if tokenizer is None:
        tokenizer = load_tokenizer(name or model.config._name_or_path)
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
    args = grpo_config(scale, output_dir, seed=seed, beta=beta, **config_overrides)
    return FastGRPOTrainer(model=model, reward_funcs=[checked_reward(f) for f in funcs], args=args,
                       train_dataset=train_dataset, processing_class=tokenizer,
                       callbacks=list(callbacks or []))


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
