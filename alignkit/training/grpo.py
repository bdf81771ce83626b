"""GRPO: TRL's ``GRPOTrainer`` with every field that matters written out, and a faster rollout.

TRL changes its defaults between releases (GRPO's beta, loss type, bf16, gradient
checkpointing...), so nothing here relies on them. A config is built in layers, each one place:

1. :data:`GRPO_DEFAULTS`: the GRPO algorithm as DeepSeekMath defines it (chapter 0 trains with it);
2. ``paper``: a chapter's paper-critical fields, e.g. ``alignkit.chapters.bleuberi.config.PAPER_GRPO``,
   each with the paper's value in a comment;
3. the run's own sizes (group size, lengths, steps, learning rate), from a ``Scale``, a chapter's
   size table or a recipe's ``grpo:`` section;
4. the precision policy (``alignkit.runtime``), which alone sets ``bf16``/``fp16``.

Introduced in chapter 0 (one GRPO step end to end); chapters 1-3 and ``python -m alignkit train``
build every GRPO trainer through :func:`build_grpo_trainer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer

from alignkit.models import load_policy, load_tokenizer
from alignkit.runtime import vllm_dtype
from alignkit.scale import Scale
from alignkit.training.common import checked_reward, make_config

# The GRPO algorithm's own settings (Shao et al. 2024, DeepSeekMath, section 4.1), written out
# because TRL's defaults differ from them and change between releases.
GRPO_DEFAULTS: dict = dict(
    temperature=1.0,  # sample from the policy itself
    top_p=1.0,
    top_k=0,  # no top-k truncation (TRL 1.x default; TRL 0.17 had 50)
    beta=0.0,  # KL coefficient; 0 skips the reference model (TRL >= 0.19 default; DeepSeekMath used 0.04)
    loss_type="grpo",  # per-sequence length normalisation as in the paper (TRL 1.x default is "dapo")
    scale_rewards="group",  # advantages = (r - mean) / std within each group
    epsilon=0.2,  # PPO-style clip range
    num_iterations=1,  # one gradient step per batch of generations: on-policy
    lr_scheduler_type="constant",
    warmup_steps=0,
)
# bookkeeping every run shares (not paper-critical)
_BOOKKEEPING: dict = dict(logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=False,
                          remove_unused_columns=False, gradient_checkpointing=True)


def scale_fields(scale: Scale) -> dict:
    """The GRPO fields a :class:`~alignkit.scale.Scale` decides: group size, one prompt per
    device step, completion length, steps, and the learning rate for LoRA or full fine-tuning."""
    return dict(num_generations=scale.num_generations,  # G completions per prompt
                per_device_train_batch_size=scale.num_generations,  # one prompt per device step
                gradient_accumulation_steps=1, max_completion_length=scale.max_completion_length,
                max_steps=scale.max_steps, learning_rate=1e-4 if scale.lora else 1e-6)


def grpo_settings(*, scale: Scale | None = None, paper: Mapping | None = None, **fields) -> dict:
    """The merged GRPO fields, lowest layer first: bookkeeping, :data:`GRPO_DEFAULTS`, ``paper``,
    the ``scale``'s sizes, then ``fields`` (what this run sets itself). Precision is not here:
    :func:`grpo_config` adds it from the policy."""
    return {**_BOOKKEEPING, **GRPO_DEFAULTS, **dict(paper or {}),
            **(scale_fields(scale) if scale is not None else {}), **fields}


def check_vllm_dtype(settings: Mapping, compute: torch.dtype | None = None) -> None:
    """Refuse a colocated vLLM engine where the precision policy says fp16 (a T4 or a V100).

    vLLM's dtype follows the policy (``alignkit.runtime.vllm_dtype``: "half" below compute
    capability 8). TRL 1.16's colocated engine takes no dtype argument and starts in the model's
    own dtype (bf16 for Qwen2.5), which vLLM refuses on such a card; a vLLM server can be given
    the policy's dtype, so the error says how.
    """
    colocated = settings.get("use_vllm") and settings.get("vllm_mode", "colocate") == "colocate"
    if colocated and vllm_dtype(compute) == "half":
        raise ValueError("use_vllm with vllm_mode 'colocate' on a GPU below compute capability 8 (T4, V100) would "
                         "start vLLM in bf16, which it refuses there; use vllm_mode 'server' with "
                         "`trl vllm-serve --model MODEL --dtype half`, or use_vllm false")


def grpo_config(output_dir: str | Path, *, scale: Scale | None = None, paper: Mapping | None = None,
                seed: int = 0, compute: torch.dtype | None = None, **fields) -> GRPOConfig:
    """A ``trl.GRPOConfig`` from the layers of :func:`grpo_settings` and the precision policy.

    Each field must be a real ``GRPOConfig`` field (an unknown one raises ``TypeError`` naming it);
    ``bf16``/``fp16`` are refused (they follow ``alignkit.runtime``, or ``compute`` when given).
    """
    settings = grpo_settings(scale=scale, paper=paper, output_dir=str(output_dir), seed=seed, **fields)
    check_vllm_dtype(settings, compute)
    return make_config(GRPOConfig, settings, compute=compute)


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

    The trainable weights keep the dtype the model was built with (the precision policy's:
    float32 master weights for LoRA; autocast does the bf16/fp16 compute). TRL casts a 4-bit
    model's adapter to bfloat16 (even on a CPU with ``bf16=False``), and peft loads it back in
    float32 on resume, so a resumed QLoRA run would change precision mid-run; both are undone.
    Reward functions wrapped by ``checked_reward`` also receive ``is_truncated`` (see there).
    """

    def __init__(self, model, *args, **kwargs):
        dtypes = ({n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
                  if isinstance(model, torch.nn.Module) else {})
        super().__init__(model, *args, **kwargs)
        self._trainable_dtypes = dtypes
        self._restore_trainable_dtypes()
        # what ends a completion, as TRL counts it: any EOS id of the model, or the pad id
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        stops = {*self.eos_token_ids, tokenizer.pad_token_id}
        for reward in self.reward_funcs:  # checked_reward wrappers then pass is_truncated
            if hasattr(reward, "stop_token_ids"):
                reward.stop_token_ids = stops

    def _restore_trainable_dtypes(self) -> None:
        for name, param in self.accelerator.unwrap_model(self.model).named_parameters():
            dtype = self._trainable_dtypes.get(name)
            if dtype is not None and param.dtype != dtype:
                param.data = param.data.to(dtype)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._restore_trainable_dtypes()

    def _generate_single_turn(self, *args, **kwargs):
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        if self.use_vllm or sharded:
            return super()._generate_single_turn(*args, **kwargs)
        with merged_adapters(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(*args, **kwargs)


def build_grpo_trainer(model, reward_funcs: Callable | Sequence[Callable], train_dataset, *,
                       output_dir: str | Path, scale: Scale | None = None, paper: Mapping | None = None,
                       seed: int = 0, tokenizer=None, callbacks: Sequence | None = None,
                       compute: torch.dtype | None = None, **fields) -> FastGRPOTrainer:
    """A ready :class:`FastGRPOTrainer`: the policy, checked rewards and :func:`grpo_config`.

    Args:
        model: a model, or a short name / hub id loaded with ``load_policy`` (LoRA and 4-bit as
            ``scale`` says; LoRA when no scale is given), seeded with ``seed`` first so that
            the same seed gives the same adapter initialisation.
        reward_funcs: one TRL reward function or a list (each wrapped by ``checked_reward``).
        train_dataset: a ``datasets.Dataset`` with a ``prompt`` column (plain or conversational).
        scale, paper, seed, compute, fields: the config layers of :func:`grpo_config`.
        tokenizer: defaults to the model's own; callbacks: extra ``TrainerCallback`` objects.
    """
    if len(train_dataset) == 0:
        raise ValueError("train_dataset is empty; GRPO needs at least one prompt")
    if "prompt" not in train_dataset.column_names:
        raise ValueError(f"train_dataset needs a 'prompt' column, has {train_dataset.column_names}")
    args = grpo_config(output_dir, scale=scale, paper=paper, seed=seed, compute=compute, **fields)
    name = model if isinstance(model, str) else None
    if name is not None:
        quantization = scale.quantization if scale is not None else None
        model = load_policy(name, quantization=quantization, lora=None if scale and not scale.lora else True,
                            seed=seed)
    if tokenizer is None:
        tokenizer = load_tokenizer(name or model.config._name_or_path)
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
    trainer = FastGRPOTrainer(model=model, reward_funcs=[checked_reward(f) for f in funcs], args=args,
                              train_dataset=train_dataset, processing_class=tokenizer,
                              callbacks=list(callbacks or []))
    if name is not None:  # what alignkit.training.train saves as the run's configuration
        trainer.alignkit_run = {"model_name": name}
    return trainer
