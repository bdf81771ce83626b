"""GRPO rollouts on a CPU from a separate inference copy of the policy, and completion-only scoring.

The pattern of TRL's colocated vLLM engine (and verl's, OpenRLHF's), done in process: the trainer
keeps its float32 master weights and LoRA adapter for the gradient; rollouts are sampled from a
plain copy of the policy with the adapter merged in, in the fastest dtype this CPU runs natively
(``alignkit.runtime.pick_dtype``: bfloat16 only where the CPU has AMX / AVX512-BF16), and the
copy is refreshed from the trained weights after every optimizer step. A Llama or Qwen2 copy
decodes in :class:`alignkit.training.decode.FusedDecoder`'s hand-written loop. Used by
:class:`alignkit.training.FastGRPOTrainer` (issue 18: GRPO on a laptop CPU near the hardware's
limit); chapter 0 introduces it.
"""

from __future__ import annotations

import copy
import math

import torch
from transformers import LogitsProcessor

from alignkit.runtime import cpu_has_fast_bf16, pick_dtype


def _lora_layers(model) -> dict[str, torch.nn.Module]:
    """``{module name in the plain model: peft LoRA layer}`` of a PEFT model's base model."""
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.get_base_model().named_modules() if isinstance(m, LoraLayer)}


def _untie_adapted_weights(model) -> None:
    """Give a LoRA layer whose base weight is tied to another module (an adapted LM head tied to
    the input embeddings) a weight of its own, so that merging the adapter changes that layer alone."""
    shared = {}
    for name, p in model.get_base_model().named_parameters(remove_duplicate=False):
        shared.setdefault(id(p), []).append(name)
    for layer in _lora_layers(model).values():
        weight = layer.base_layer.weight
        if len(shared.get(id(weight), ())) > 1:
            layer.base_layer.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=False)


def _write_merged_weight(layer, target: torch.Tensor) -> None:
    """Write a peft LoRA layer's merged weight ``W + sum of scaling * B @ A`` over its active
    adapters into ``target`` (the inference copy's parameter, any dtype), computed in float32.

    One active adapter on a float32 ``nn.Linear`` (the chapters' case) is one ``addmm`` straight
    into ``target`` (or into a float32 buffer cast once into a bfloat16 copy): on SmolLM2-135M's
    210 adapters 0.063 s against 0.129 s for peft's ``get_delta_weight`` followed by a sum and a
    copy (2-core AMD EPYC, float32). Any other layout (``fan_in_fan_out``, several adapters, a
    half-precision base) takes peft's ``get_delta_weight``, the reference the tests compare with.
    """
    weight = layer.base_layer.weight.detach()
    adapters = [a for a in layer.active_adapters if a in layer.lora_A and not layer.merged]
    if len(adapters) == 1 and not getattr(layer, "fan_in_fan_out", False):
        a = adapters[0]
        b_matrix, a_matrix = layer.lora_B[a].weight.detach(), layer.lora_A[a].weight.detach()
        plain = isinstance(layer.lora_A[a], torch.nn.Linear) and isinstance(layer.lora_B[a], torch.nn.Linear)
        if plain and all(t.dtype == torch.float32 for t in (weight, b_matrix, a_matrix)):
            if target.dtype == torch.float32 and target.is_contiguous():
                torch.addmm(weight, b_matrix, a_matrix, alpha=layer.scaling[a], out=target)
            else:
                target.copy_(torch.addmm(weight, b_matrix, a_matrix, alpha=layer.scaling[a]))
            return
    merged = weight.float()
    for adapter in adapters:
        merged = merged + layer.get_delta_weight(adapter).float()
    target.copy_(merged)


def supports_inference_copy(model) -> bool:
    """True for a model :class:`InferenceCopy` can mirror exactly: an unquantised plain model (full
    fine-tuning) or a PEFT model whose trainable weights are plain LoRA ``nn.Linear`` adapters.

    A 4-bit/8-bit base (QLoRA), DoRA and other LoRA variants, and ``modules_to_save`` are not
    mirrored; the trainer then samples from the trained model itself.
    """
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        return False
    if not isinstance(model, PeftModel):
        return True
    layers = _lora_layers(model)
    for layer in layers.values():
        if not isinstance(layer.base_layer, torch.nn.Linear) or any(getattr(layer, "lora_variant", {}).values()):
            return False
    return all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def packed_linear_available() -> bool:
    """True where torch has oneDNN's prepacked linear (the kernel torch.compile's CPU freezing
    pass uses for frozen weights): ``torch.ops.mkldnn._reorder_linear_weight`` and
    ``_linear_pointwise``. Private ops, hence this check; without them the copy stays plain."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and hasattr(ops, "_reorder_linear_weight")
                    and hasattr(ops, "_linear_pointwise"))
    except (AttributeError, RuntimeError):
        return False


PACKED_DTYPES = (torch.float32, torch.bfloat16)  # the weight dtypes PackedLinear takes


class PackedLinear(torch.nn.Linear):
    """A frozen float32 or bfloat16 ``nn.Linear`` whose weight oneDNN reorders once into its own
    blocked layout.

    Why: decoding multiplies a batch of a few rows by every weight once per token, and MKL's sgemm
    (what ``F.linear`` calls) repacks the weight on each call; measured on a 2-core AMD EPYC
    without AVX512, the 211 linear layers of SmolLM2-135M at batch 8 take 107 ms a token through
    ``F.linear`` and 64 ms prepacked (reading the same 538 MB takes 27 ms); on a 2-core AMD EPYC
    with AVX512-BF16, 8 x 32 sampled tokens take 4.4 s with plain bfloat16 layers and 3.1 s
    prepacked (the same tokens). The dense ``weight`` stays the layer's parameter (the inference
    copy is refreshed through it); :meth:`repack` must follow every change of it. Same results as
    ``F.linear`` up to rounding in the layer's dtype.
    """

    def __init__(self, linear: torch.nn.Linear, batch_hint: int = 8):
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.batch_hint = batch_hint
        self.repack()

    @torch.no_grad()
    def repack(self) -> None:
        """Reorder the current ``weight`` for oneDNN (after every refresh of the copy)."""
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach().contiguous(), self.batch_hint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def pack_linears(model: torch.nn.Module, batch_hint: int = 8) -> int:
    """Replace every float32 or bfloat16 ``nn.Linear`` of ``model`` by a :class:`PackedLinear`;
    returns how many."""
    targets = [(name, m) for name, m in model.named_modules()
               if type(m) is torch.nn.Linear and m.weight.dtype in PACKED_DTYPES]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, PackedLinear(module, batch_hint))
    return len(targets)


def packing_pays(dtype: torch.dtype) -> bool:
    """True where :class:`PackedLinear` applies to weights of ``dtype`` on this CPU: oneDNN's ops
    exist, and the dtype is float32, or bfloat16 on a CPU with native bf16 (oneDNN's bf16 path
    needs AVX512)."""
    return packed_linear_available() and (
        dtype == torch.float32 or (dtype == torch.bfloat16 and cpu_has_fast_bf16()))


def pack_for_decoding(model: torch.nn.Module, batch_hint: int = 8) -> torch.nn.Module:
    """``model``, only decoded from now on (eval mode, no gradients), with its linear layers
    prepacked where :func:`packing_pays`; chapter 1 evaluates its trained models this way (the
    same greedy answers, ~1.35x faster at 50 sequences on 2 cores)."""
    model.eval().requires_grad_(False)
    if packing_pays(next(model.parameters()).dtype):
        pack_linears(model, batch_hint)
    return model


class InverseCDFSampler(LogitsProcessor):
    """The last logits processor of a greedy ``generate`` that then samples: draws one token a row
    from ``softmax(scores)`` by inverse transform sampling, and returns scores that are 0 at the
    drawn token and -inf elsewhere, so that greedy decoding takes it.

    Why: transformers samples with ``torch.multinomial``, whose CPU kernel draws an exponential
    variate for every vocabulary entry: 7.0 ms a token for 8 rows of SmolLM2's 49,152 on a 2-core
    Intel Sapphire Rapids, 15% of a rollout (issue 18). One uniform a row against the cumulative
    sum takes 0.4 ms. The same distribution: token ``i`` is drawn with probability ``p_i``, up to
    the float64 rounding of the cumulative sum; a token of probability 0 is never drawn. Draws
    from torch's global generator, so a seed fixes them (they differ from multinomial's draws).
    """

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = inverse_cdf_draw(scores)[:, None]
        return torch.full_like(scores, -math.inf).scatter_(-1, tokens, 0.0)


CDF_BLOCK = 256  # vocabulary entries a block of the two-level cumulative sum of inverse_cdf_draw


def inverse_cdf_draw(scores: torch.Tensor) -> torch.Tensor:
    """One token a row drawn from ``softmax(scores)`` (rows, vocabulary) by inverse transform
    sampling: one uniform ``u`` a row, scaled to the total probability, and the first token whose
    cumulative probability exceeds it (see :class:`InverseCDFSampler`).

    The cumulative sum is taken in two levels: over blocks of :data:`CDF_BLOCK` tokens (float32
    sums of the float32 probabilities, accumulated in float64), then, in float64, inside the one
    block ``u`` falls in. The same token as one float64 cumulative sum over the whole vocabulary
    up to rounding in the probabilities' own float32 precision (a token's probability moves by
    about 1e-7 of its block's), without that sum's sequential pass: 0.4 ms against 2.3 ms for
    8 x 49,152 (2-core Intel CPU with AMX), where a decode step of SmolLM2-135M in bfloat16 takes
    about 40 ms (issue 18)."""
    probs = torch.softmax(scores.float(), dim=-1)
    rows, vocab = probs.shape
    blocks = -(-vocab // CDF_BLOCK)
    if blocks * CDF_BLOCK != vocab:
        probs = torch.nn.functional.pad(probs, (0, blocks * CDF_BLOCK - vocab))
    probs = probs.view(rows, blocks, CDF_BLOCK)
    block_cdf = probs.sum(-1).double().cumsum_(-1)  # a float32 block sum: the probabilities' own precision
    total = block_cdf[:, -1:].contiguous()
    u = torch.rand(total.shape, dtype=torch.float64, device=probs.device) * total
    # u can round up to the total: then the last block of positive probability, not the last one
    block = torch.minimum(torch.searchsorted(block_cdf, u, right=True), torch.searchsorted(block_cdf, total))
    below = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
    inside = probs.gather(1, block.unsqueeze(-1).expand(rows, 1, CDF_BLOCK)).squeeze(1).cumsum(-1, dtype=torch.float64)
    rest = (u - below).contiguous()
    # the block's own sum and its cumulative sum round apart: then its last token of positive probability
    token = torch.minimum(torch.searchsorted(inside, rest, right=True),
                          torch.searchsorted(inside, inside[:, -1:].contiguous()))
    return (block * CDF_BLOCK + token).squeeze(-1)


def sampling_warpers(config) -> list | None:
    """The logits warpers transformers applies when it samples with ``config`` (temperature, top-k,
    top-p, min-p, in its order and with its conditions), for a greedy ``generate`` that samples
    with :class:`InverseCDFSampler`. None where ``config`` does not sample, or needs what this does
    not build (beams, typical-p, epsilon or eta cutoffs, top-h, watermarking, renormalised logits):
    ``generate`` then samples itself."""
    from transformers import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    def cut(name):  # a cutoff transformers applies when strictly between 0 and 1
        value = getattr(config, name, None)
        return value is not None and 0.0 < value < 1.0

    others = ((config.num_beams or 1) > 1 or getattr(config, "top_h", None) is not None
              or (config.typical_p is not None and config.typical_p < 1.0) or cut("epsilon_cutoff")
              or cut("eta_cutoff") or config.watermarking_config is not None or config.renormalize_logits)
    if not config.do_sample or others:
        return None
    warpers = []
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k is not None and config.top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=config.top_k, min_tokens_to_keep=1))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p, min_tokens_to_keep=1))
    if config.min_p is not None:
        warpers.append(MinPLogitsWarper(min_p=config.min_p, min_tokens_to_keep=1))
    return warpers


def fast_sampling(config):
    """``(greedy config, logits processors)`` that sample what ``config`` samples, with
    :class:`InverseCDFSampler` in place of ``torch.multinomial``; None where
    :func:`sampling_warpers` is."""
    from transformers import LogitsProcessorList

    warpers = sampling_warpers(config)
    if warpers is None:
        return None
    greedy = copy.deepcopy(config)
    greedy.update(do_sample=False, temperature=None, top_k=None, top_p=None, min_p=None)
    return greedy, LogitsProcessorList([*warpers, InverseCDFSampler()])


class InferenceCopy:
    """A plain copy of a policy for sampling: the LoRA adapter merged, in ``dtype``, no gradients.

    ``refresh(policy)`` writes the policy's current weights into the copy: for each LoRA layer
    ``W + scaling * B @ A`` (:func:`_write_merged_weight`, checked against peft's own merge; the
    trained model is never merged, so its base weights never drift), for a full fine-tuning run
    every trainable tensor. Only what training can change is copied, then repacked: about 0.17 s
    a step for SmolLM2-135M's 210 adapters on 2 cores (float32, AMD EPYC without AVX512).

    Args:
        policy: the trained model (a PEFT LoRA model or a plain ``PreTrainedModel``);
            :func:`supports_inference_copy` must accept it.
        dtype: the copy's dtype; default the precision policy's (bf16 only where native).
        packed: linear layers as :class:`PackedLinear` (default: where :func:`packing_pays`).
        fused: decode with :class:`~alignkit.training.decode.FusedDecoder` (default: where
            :func:`~alignkit.training.decode.supports_fused_decoding`; the packed matrices are
            then the decoder's, and ``model`` keeps plain layers sharing their weights).
        batch_hint: the rollout batch the packed layout is tuned for (any batch works).
        fast_sampling: draw tokens with :class:`InverseCDFSampler` (the same distribution as
            ``generate``'s ``torch.multinomial``, other draws); False draws as ``generate`` does.
    """

    def __init__(self, policy, dtype: torch.dtype | None = None, *, packed: bool | None = None,
                 batch_hint: int = 8, fast_sampling: bool = True, fused: bool | None = None):
        from peft import PeftModel

        from alignkit.training.decode import FusedDecoder, supports_fused_decoding

        if not supports_inference_copy(policy):
            raise ValueError(f"{type(policy).__name__} cannot be mirrored by InferenceCopy (quantised base, "
                             "a LoRA variant such as DoRA, or modules_to_save); sample from the model itself")
        self.dtype = dtype or pick_dtype(torch.device("cpu"))
        self.fast_sampling = fast_sampling
        clone = copy.deepcopy(policy)
        if isinstance(clone, PeftModel):
            _untie_adapted_weights(clone)
        model = clone.merge_and_unload() if isinstance(clone, PeftModel) else clone
        vars(model).pop("forward", None)  # TRL's fused log-prob head, patched on the instance
        self.model = model.to(self.dtype).eval().requires_grad_(False)
        if packed is None:
            packed = packing_pays(self.dtype)
        if fused is None:
            fused = supports_fused_decoding(self.model)
        self.decoder = FusedDecoder(self.model, packed=packed, batch_hint=batch_hint) if fused else None
        self._pack_for_generate = packed, batch_hint  # with a decoder: when generate is first needed
        self.packed = pack_linears(self.model, batch_hint) if packed and not fused else 0  # layers packed
        self.refresh(policy)

    @torch.no_grad()
    def refresh(self, policy) -> None:
        """Copy ``policy``'s current (merged) weights into the inference copy."""
        from peft import PeftModel

        params = dict(self.model.named_parameters())
        if not isinstance(policy, PeftModel):
            for name, p in policy.named_parameters():
                if p.requires_grad:
                    params[name].copy_(p)
            changed = [m for m in self.model.modules() if isinstance(m, PackedLinear)]
            head_changed = True  # full fine-tuning: the (often tied) head trains too
        else:
            changed = []
            for name, layer in _lora_layers(policy).items():
                _write_merged_weight(layer, params[f"{name}.weight"])
                changed.append(self.model.get_submodule(name))
            head_changed = any(module is self.model.get_output_embeddings() for module in changed)
        for module in changed:
            if isinstance(module, PackedLinear):
                module.repack()
        if self.decoder is not None:
            self.decoder.repack(head=head_changed)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generation_config, *,
                 group: int = 1, logprobs: bool = False):
        """``generate`` on the copy with the trainer's own ``GenerationConfig`` (same sampling).

        ``group``: GRPO's rows come in runs of ``num_generations`` copies of one prompt. When every
        run of ``group`` rows holds one (left-padded) prompt and the cache is the dynamic one, the
        prompt is prefilled once per run and its KV cache repeated to the run's rows: the same
        keys and values (up to float rounding) for 1/``group`` of the prefill's matmuls.

        ``logprobs``: also return the sampler's log-probability of each new token, ``(rows, new
        tokens)``, as the trainer scores its policy: ``log_softmax(logits / temperature)`` over the
        whole vocabulary, before top-k, top-p and the other logits processors. Compared with the
        policy's own log-prob of the same token, it then measures the precision mismatch alone:
        the truncation of top-k / top-p is the same for both models and is not corrected by TRL's
        own (non-vLLM) path either. Returns the sequences, or ``(sequences, logprobs)``.
        """
        from alignkit.training.decode import decodable

        if self.decoder is not None and self.fast_sampling and decodable(generation_config):
            return self.decoder.generate(input_ids, attention_mask, generation_config, group=group,
                                         logprobs=logprobs)
        packed, batch_hint = self._pack_for_generate
        if packed and not self.packed:  # a setting the decoder does not run: generate on packed layers
            self.packed = pack_linears(self.model, batch_hint)
        temperature = generation_config.temperature or 1.0
        with torch.inference_mode():
            cache = None
            if group > 1 and generation_config.cache_implementation is None and _grouped(input_ids, group):
                cache = self._prefill(input_ids[::group, :-1], attention_mask[::group, :-1])
                cache.batch_repeat_interleave(group)
            kwargs = {} if cache is None else {_cache_kwarg(self.model): cache}
            fast = fast_sampling(generation_config) if self.fast_sampling else None
            if fast is not None:
                generation_config, kwargs["logits_processor"] = fast
            if logprobs:
                generation_config = copy.copy(generation_config)
                generation_config.update(return_dict_in_generate=True, output_logits=True)
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                      generation_config=generation_config, **kwargs)
            if not logprobs:
                return out
            new = out.sequences[:, input_ids.size(1):]
            steps = [torch.log_softmax(raw.float() / temperature, -1).gather(-1, new[:, t, None])
                     for t, raw in enumerate(out.logits)]
            return out.sequences, torch.cat(steps, -1)

    def _prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The dynamic KV cache of ``input_ids`` (left-padded: positions count real tokens only)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                   logits_to_keep=1, **{_cache_kwarg(self.model): cache})
        return cache


def _grouped(input_ids: torch.Tensor, group: int) -> bool:
    """True when the rows come in runs of ``group`` identical rows."""
    if input_ids.size(0) % group or input_ids.size(1) < 2:
        return False
    runs = input_ids.view(-1, group, input_ids.size(1))
    return bool((runs == runs[:, :1]).all())


def _cache_kwarg(model) -> str:
    """transformers 5.2x names the KV cache argument ``cache``; earlier releases ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


# Longest sequence whose training forward runs SDPA's math kernel under CPU autocast (bf16/fp16):
# torch's CPU flash kernel spends a fixed ~15-20 ms on a forward + backward of 8 x 9 heads at
# any length up to ~190 tokens, the math kernel 6 ms at 70 tokens, 15 ms at 128, 26 ms at 192 and
# 51 ms at 256 (2-core Intel CPU with AMX, head size 64, with and without a padding mask). On the
# GRPO step of benchmarks/grpo_cpu.py (70 tokens) the backward went from 1.35 to 0.98 s. In
# float32 the two kernels take the same time, and the math kernel keeps a length x length
# attention matrix per layer for the backward, so longer sequences keep the flash kernel. The math
# kernel attends in bfloat16 where the flash kernel accumulates in float32: on SmolLM2-135M the
# completion log-probs under bf16 autocast are 0.027 nats a token from float32's on average
# (flash: 0.023), inside the training-inference mismatch the importance sampling corrects.
MATH_ATTENTION_MAX_LENGTH = 160


def _training_attention(input_ids: torch.Tensor):
    """The SDPA kernel choice for a CPU training forward over ``input_ids`` (see
    :data:`MATH_ATTENTION_MAX_LENGTH`): the math kernel for short sequences under CPU autocast,
    else torch's own choice."""
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    short = input_ids.size(1) <= MATH_ATTENTION_MAX_LENGTH
    if input_ids.device.type == "cpu" and short and torch.is_autocast_enabled("cpu"):
        return sdpa_kernel([SDPBackend.MATH])
    return nullcontext()


def completion_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int, *,
                     temperature: float = 1.0, compute_entropy: bool = False):
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of ``input_ids``.

    Only the completion positions go through the LM head (``logits_to_keep`` of transformers'
    forward). TRL 1.16's fused head scores every position, prompt included, on a device without
    Triton (a CPU); on a 135M model with a 49k vocabulary that head is a fifth of the forward.
    Same numbers as TRL's: logits divided by ``temperature`` (skipped at 1), log-softmax in
    float32. Short sequences under CPU autocast attend with SDPA's math kernel
    (:data:`MATH_ATTENTION_MAX_LENGTH`).
    """
    with _training_attention(input_ids):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep + 1).logits
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    log_z = torch.logsumexp(logits, dim=-1)
    targets = input_ids[:, -logits_to_keep:]
    logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    entropy = None
    if compute_entropy:
        entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return logps, entropy


@torch.no_grad()
def sampling_mismatch(policy, sampler, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      logits_to_keep: int, *, temperature: float = 1.0, autocast=None) -> dict[str, float]:
    """How far the sampler's next-token distributions are from the trained policy's on rollouts.

    Returns ``{"kl": mean KL(sampler || policy) in nats per completion token, "max_abs_logp": the
    largest |log p_sampler - log p_policy| of a sampled token}`` over the real (unmasked) completion
    positions. The training-inference mismatch that TRL corrects with truncated importance
    sampling for vLLM (``vllm_importance_sampling_correction``); ``autocast`` is the trainer's
    autocast context for the policy's forward (bf16 where native).

    Both models run in eval mode (their modes are restored after): a policy left in training mode
    would add its LoRA dropout's noise, which is no part of the sampler's mismatch (measured on
    SmolLM2-135M in float32 with a perturbed adapter and dropout 0.05: 3.8e-4 nats a token in
    training mode against 5e-9 in eval mode).
    """
    from contextlib import nullcontext

    def log_probs(model, ctx):
        was_training = model.training
        model.eval()
        try:
            with ctx:
                logits = model(input_ids=input_ids, attention_mask=attention_mask,
                               logits_to_keep=logits_to_keep + 1).logits
        finally:
            model.train(was_training)
        return torch.log_softmax(logits[:, :-1].float() / temperature, dim=-1)

    logq = log_probs(sampler, nullcontext())
    logp = log_probs(policy, autocast or nullcontext())
    mask = attention_mask[:, -logits_to_keep:].bool()
    kl = (logq.exp() * (logq - logp)).sum(-1)[mask]
    targets = input_ids[:, -logits_to_keep:, None]
    diff = (logq.gather(-1, targets) - logp.gather(-1, targets)).squeeze(-1)[mask].abs()
    return {"kl": float(kl.mean()), "max_abs_logp": float(diff.max())}


IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def importance_weights(policy_logps: torch.Tensor, sampler_logps: torch.Tensor, mask: torch.Tensor, *,
                       mode: str = "sequence_mask", clip_min: float | None = None,
                       clip_max: float | None = 3.0) -> torch.Tensor:
    """Truncated or masked importance weights ``pi / mu`` for rollouts drawn from a sampler ``mu``
    that is not exactly the trained policy ``pi``: TRL's vLLM correction, in its four modes.

    ``policy_logps`` and ``sampler_logps`` are ``(rows, tokens)`` log-probs of the sampled tokens;
    ``mask`` marks the completion tokens. ``token_*`` gives one weight per token, ``sequence_*``
    one per row (the product over its tokens). ``*_truncate`` clamps the weights to ``[clip_min,
    clip_max]`` (truncated importance sampling, Yao et al. 2025); ``*_mask`` sets weights outside
    it to 0. Same modes, defaults and arithmetic as ``GRPOConfig.vllm_importance_sampling_*``; a
    NaN log-prob counts as no difference. Used by :class:`alignkit.training.FastGRPOTrainer` when
    its inference copy samples in bfloat16 (issue 18).
    """
    if mode not in IS_MODES:
        raise ValueError(f"importance-sampling mode must be one of {IS_MODES}, got {mode!r}")
    diff = torch.nan_to_num((policy_logps - sampler_logps) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = diff.exp()
    if mode.endswith("truncate"):
        return ratio.clamp(min=clip_min, max=clip_max)
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0)
