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

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer

from alignkit.models import load_policy, load_tokenizer
from alignkit.runtime import progress_bars, vllm_dtype
from alignkit.scale import Scale
from alignkit.training.common import checked_reward, make_config, without_printed_logs
from alignkit.training.fast_dropout import use_fast_dropout
from alignkit.training.rollout import (
    InferenceCopy,
    completion_logps,
    importance_weights,
    supports_inference_copy,
)

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
# (``report_to`` follows the scale: TensorBoard at cpu/gpu/cluster, nothing at smoke)
_BOOKKEEPING: dict = dict(logging_steps=1, save_strategy="no", report_to="none",
                          remove_unused_columns=False, gradient_checkpointing=True)


def scale_fields(scale: Scale) -> dict:
    """The GRPO fields a :class:`~alignkit.scale.Scale` decides: group size, one prompt per
    device step, completion length, steps, and the learning rate for LoRA or full fine-tuning."""
    return dict(num_generations=scale.num_generations,  # G completions per prompt
                per_device_train_batch_size=scale.num_generations,  # one prompt per device step
                gradient_accumulation_steps=1, max_completion_length=scale.max_completion_length,
                max_steps=scale.max_steps, learning_rate=1e-4 if scale.lora else 1e-6,
                report_to=scale.report_to)  # where the logs go (TensorBoard except at smoke)


def grpo_settings(*, scale: Scale | None = None, paper: Mapping | None = None, **fields) -> dict:
    """The merged GRPO fields, lowest layer first: bookkeeping, :data:`GRPO_DEFAULTS`, ``paper``,
    the ``scale``'s sizes, then ``fields`` (what this run sets itself). Precision is not here:
    :func:`grpo_config` adds it from the policy."""
    return {**_BOOKKEEPING, "disable_tqdm": not progress_bars(), **GRPO_DEFAULTS, **dict(paper or {}),
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


# Rollouts on a CPU: what was measured before deciding (8 completions x 32 tokens, SmolLM2-135M).
# A static KV cache paid only in bfloat16 on an AVX512-BF16 CPU (1.36 s -> 1.06 s, issue 18); in
# float32 on a 2-core AMD EPYC without AVX512 it was slower than the dynamic cache (7.6 s -> 8.6 s,
# one thread), so it follows the copy's dtype. torch.compile of the static-cache decode step gave
# no gain there that stood above the noise of a loaded machine (16-56 s against 18-29 s eager), so
# it is not used; the dynamic cache also lets a group's shared prompt be prefilled once. On a 2-core
# Intel CPU with AMX, in bfloat16 (8 x 32 tokens): prepacked eager 1.18 s, compiled unpacked 1.11 s
# after a 48 s compile; inductor's freezing reached 0.96 s but bakes the weights into the graph,
# which the refresh after every step would then not reach (and it cannot lower PackedLinear).
# The hand-written decode loop (alignkit.training.decode), compiled with dynamic shapes on a 2-core
# AMD EPYC without AVX512, float32, 8 x 32 tokens: inductor cannot lower PackedLinear; with plain
# layers the compile took 230 s and the loop 2.3 s, against 3.7 s uncompiled and 1.7 s prepacked.
STATIC_CACHE_DTYPES = (torch.bfloat16,)


class FastGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` with rollouts at the speed of inference and completion-only scoring.

    On a CPU (no vLLM, no DeepSpeed/FSDP) rollouts are sampled from an
    :class:`~alignkit.training.rollout.InferenceCopy` of the policy: the LoRA adapter merged, in
    the precision policy's dtype (bf16 only where native), refreshed from the trained weights
    whenever an optimizer step has happened since the last rollout (like TRL's colocated vLLM
    weight sync), decoded by :class:`~alignkit.training.decode.FusedDecoder` for a Llama or Qwen2
    model (else by ``generate``, with a static KV cache where it pays: :data:`STATIC_CACHE_DTYPES`),
    all of a step's prompts in one batch. Where no copy can be made (a 4-bit base, DoRA) the adapter is
    merged for the rollout instead (:func:`merged_adapters`). Log-probs are computed for the
    completion tokens only (:func:`~alignkit.training.rollout.completion_logps`), and LoRA dropout
    draws its masks with :class:`~alignkit.training.fast_dropout.GapDropout` (same distribution).

    Everything else (loss, advantages, logging, checkpoints, distributed training) is TRL's own.
    ``build_grpo_trainer`` and the recipe launcher build this class.

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
        if self._on_cpu_alone:  # the same LoRA dropout masks at a third of the RNG cost
            use_fast_dropout(self.accelerator.unwrap_model(self.model))
        self.inference_copy: InferenceCopy | None = None
        self._loss_inputs: dict | None = None  # the batch _compute_loss corrects in its forward
        self._copy_step = -1  # the global step the copy's weights are from
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
        self._copy_step = -1  # new weights: the next rollout refreshes the copy

    @property
    def _on_cpu_alone(self) -> bool:
        """True where the rollouts and the log-probs take the CPU fast path (no vLLM, no sharding)."""
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled
        return self.accelerator.device.type == "cpu" and not (self.use_vllm or sharded)

    def rollout_sampler(self) -> InferenceCopy | None:
        """The inference copy, refreshed to the current weights (None where it does not apply)."""
        policy = self.accelerator.unwrap_model(self.model)
        if not self._on_cpu_alone or not supports_inference_copy(policy):
            return None
        if self.inference_copy is None:
            self.inference_copy = InferenceCopy(policy, batch_hint=self.args.per_device_train_batch_size)
            config = copy.deepcopy(self.generation_config)  # TRL's sampling settings, unchanged
            if self.args.cache_implementation is None and self.inference_copy.dtype in STATIC_CACHE_DTYPES:
                config.cache_implementation = "static"
            self.inference_copy.model.generation_config = config
            self._copy_step = self.state.global_step
        elif self._copy_step != self.state.global_step:
            self.inference_copy.refresh(policy)
            self._copy_step = self.state.global_step
        return self.inference_copy

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        text_only = images is None and not multimodal_fields and not has_tool_images
        sampler = self.rollout_sampler() if text_only else None
        if sampler is not None:
            return self._sample_from_copy(sampler, prompt_ids, logprobs=self.corrects_mismatch(sampler))
        args = (prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        if self.use_vllm or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._generate_single_turn(*args)
        with merged_adapters(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(*args)

    def corrects_mismatch(self, sampler: InferenceCopy) -> bool:
        """True where rollouts from ``sampler`` get TRL's importance-sampling correction.

        That is where the copy and the trained policy compute in different precision (a bfloat16
        copy, or bf16/fp16 autocast of the float32 master weights) and ``GRPOConfig``'s
        ``vllm_importance_sampling_correction`` (default True) is on: TRL applies it to vLLM
        rollouts only. A float32 copy of a float32 policy samples the policy's own distribution
        to ~1e-8 nats a token (tests/test_fast_grpo.py), so it needs none and skips the extra
        forward pass that the correction costs.
        """
        low_precision = sampler.dtype != torch.float32 or self.args.bf16 or self.args.fp16
        return bool(self.args.vllm_importance_sampling_correction and low_precision)

    def _sample_from_copy(self, sampler: InferenceCopy, prompt_ids: list[list[int]], *, logprobs: bool = False):
        """Sample one completion per prompt (left-padded into one batch, each group's shared prompt
        prefilled once), cut after the first EOS, as TRL's own transformers path does. Returns the
        completions and, with ``logprobs``, the sampler's log-prob of each of their tokens (else
        None), as TRL's ``_generate_single_turn`` does."""
        from trl.trainer.utils import pad

        prompts = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left",
                        pad_to_multiple_of=self.pad_to_multiple_of)
        attention_mask = pad([torch.ones_like(t) for t in prompts], padding_value=0, padding_side="left",
                             pad_to_multiple_of=self.pad_to_multiple_of)
        out = sampler.generate(input_ids, attention_mask, sampler.model.generation_config,
                               group=self.num_generations, logprobs=logprobs)
        out, token_logps = out if logprobs else (out, None)
        completions, kept_logps = [], []
        eos = set(self.eos_token_ids)
        for i, row in enumerate(out[:, input_ids.size(1):].tolist()):
            end = next((j + 1 for j, tok in enumerate(row) if tok in eos), len(row))
            completions.append(row[:end])
            if logprobs:
                kept_logps.append(token_logps[i, :end].tolist())
        return completions, (kept_logps if logprobs else None)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self._needs_correction(output) and output.get("old_per_token_logps") is not None:
            self._correct_mismatch(output)  # else in the loss's own forward: see _compute_loss
        return output

    def _needs_correction(self, inputs: dict) -> bool:
        """True for a batch of the inference copy's rollouts not yet corrected for its mismatch."""
        return (inputs.get("sampling_per_token_logps") is not None and not self.use_vllm
                and not inputs.get("mismatch_corrected", False))

    def _compute_loss(self, model, inputs):
        """TRL's loss; the copy's rollouts are corrected inside it where that saves a forward pass.

        Where TRL skips the old policy's log-probs (one gradient step per generation batch, so
        ``old_per_token_logps`` is the loss forward's own, detached), the trained policy's log-probs
        that the correction needs are the ones the loss computes anyway: the weights are taken from
        them (:meth:`_get_per_token_logps_and_entropies`) before TRL's loss reads the advantages,
        instead of from an extra no-grad forward after sampling (0.42 s of a 3.71 s step on a 2-core
        Intel CPU with AMX, issue 18). Same weights, on the same parameters, as that forward.
        """
        self._loss_inputs = inputs if self._needs_correction(inputs) else None
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._loss_inputs = None

    def _correct_mismatch(self, output: dict, policy_logps: torch.Tensor | None = None) -> None:
        """TRL's truncated importance sampling for the inference copy's rollouts, in place.

        The weight ``w = pi / mu`` (:func:`~alignkit.training.rollout.importance_weights`, with
        ``GRPOConfig``'s ``vllm_importance_sampling_mode`` and clips) compares the trained policy's
        log-probs of the sampled tokens (``policy_logps``: TRL's old log-probs, the loss forward's
        own, or else one no-grad forward pass here) with the copy's. TRL multiplies each token's
        loss by ``w`` only under vLLM; its other GRPO losses are linear in the advantage and
        ``w >= 0``, so the same correction is the per-token advantage ``A * w``, which TRL's loss
        takes as a ``(rows, tokens)`` tensor (VESPO reads ``w`` itself, as TRL hands it over). The
        mismatch is logged under TRL's names (``sampling/sampling_logp_difference/*``,
        ``sampling/importance_sampling_ratio/*``).
        """
        mode = "train" if self.model.training else "eval"
        prompt, completion = output["prompt_ids"], output["completion_ids"]
        mask = output["completion_mask"] * output.get("tool_mask", 1)
        if policy_logps is None:
            policy_logps = output.get("old_per_token_logps")  # TRL computed it where steps are misaligned
        if policy_logps is None:
            batch = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            with torch.no_grad():
                policy_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, torch.cat([prompt, completion], 1),
                    torch.cat([output["prompt_mask"], output["completion_mask"]], 1), completion.size(1),
                    batch_size=batch)
        sampler_logps = output["sampling_per_token_logps"]
        args = self.args
        w = importance_weights(policy_logps, sampler_logps, mask, mode=args.vllm_importance_sampling_mode,
                               clip_min=args.vllm_importance_sampling_clip_min,
                               clip_max=args.vllm_importance_sampling_clip_max)
        if self.loss_type == "vespo":  # TRL's VESPO folds the ratio into its own weights, vLLM or not
            output["importance_sampling_ratio"] = w
        else:
            advantages = output["advantages"]
            output["advantages"] = (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages) * w
        output["mismatch_corrected"] = torch.tensor(True)  # 0-dim: TRL's batch split and shuffle keep it
        delta = (policy_logps - sampler_logps).abs()[mask.bool() & ~torch.isnan(sampler_logps)]
        if delta.numel():
            flat = w.flatten() if w.size(1) == 1 else w[mask.bool()]
            for name, value in (("sampling_logp_difference/mean", delta.mean()),
                                ("sampling_logp_difference/max", delta.max()),
                                ("importance_sampling_ratio/min", flat.min()),
                                ("importance_sampling_ratio/mean", flat.mean()),
                                ("importance_sampling_ratio/max", flat.max())):
                self._metrics[mode][f"sampling/{name}"].append(float(value))

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           **multimodal):
        out = self._completion_logps(model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                                     compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        pending, self._loss_inputs = self._loss_inputs, None
        if pending is not None:  # the loss's forward (see _compute_loss): correct with its log-probs
            self._correct_mismatch(pending, policy_logps=out[0].detach())
        return out

    def _completion_logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                          compute_entropy=False, compute_aux_loss=False, **multimodal):
        """Completion-only log-probs on the CPU fast path, else TRL's own."""
        if not self._on_cpu_alone or compute_aux_loss or self.args.cast_lm_head_to_fp32 or \
                any(v is not None for v in multimodal.values()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            rows = slice(start, start + batch_size)
            with self.accelerator.autocast():
                lp, ent = completion_logps(model, input_ids[rows], attention_mask[rows], logits_to_keep,
                                           temperature=self.temperature, compute_entropy=compute_entropy)
            logps.append(lp)
            entropies.append(ent)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None


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
    without_printed_logs(trainer)  # no bar: no per-step dicts printed instead
    if name is not None:  # what alignkit.training.train saves as the run's configuration
        trainer.alignkit_run = {"model_name": name}
    return trainer
