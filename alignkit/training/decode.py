"""A hand-written decode loop for the inference copy of a Llama-family policy (issue 18).

``transformers``' ``generate`` spends most of a small model's decoding step outside its matmuls
(mask building, cache bookkeeping, logits processors, stopping criteria, one linear layer per
projection); on a 2-core CPU each of those operations costs microseconds. :class:`FusedDecoder`
runs the same model with the few operations a token needs: the query, key and value projections
fused into one matrix, the MLP's gate and up projections into another, every matrix prepacked
for oneDNN (:class:`~alignkit.training.rollout.PackedLinear`), a preallocated KV cache, each group's shared prompt prefilled once, and tokens drawn by inverse
transform sampling (:func:`~alignkit.training.rollout.inverse_cdf_draw`). The same network and
the same sampling distribution as ``generate`` (tests/test_decode.py compares logits, greedy
tokens and draws); it takes Llama and Qwen2 models with standard attention and leaves every
other model, and every generation setting it does not handle, to ``generate``. Measured on a
2-core Intel CPU with AMX (bfloat16, the same prepacked matrices): 8 x 32 sampled tokens of
SmolLM2-135M in 1.5-1.7 s against 2.0-2.7 s through ``generate``; the GRPO step's generation
phase (refresh included) 1.52 s against 2.14 s (benchmarks/grpo_cpu_amx.json, issue 18). On a
2-core AMD EPYC without AVX512 (float32) the same tokens take 1.6-1.7 s, of which the linear
layers take about 37 ms a token: oneDNN's prepacked sgemm reads the weights at about 15 GB/s at 8
rows (20 GB/s at one row) where a plain sum reads 31 GB/s; the other operations about 13 ms.

Used by :class:`~alignkit.training.rollout.InferenceCopy`; chapter 0's GRPO demo samples with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# GenerationConfig fields the loop honours; a config that sets any other field away from its
# default (a repetition penalty, min_new_tokens, stop strings, beams, ...) goes to ``generate``
HANDLED_FIELDS = frozenset({
    "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p", "min_p", "pad_token_id",
    "bos_token_id", "eos_token_id", "cache_implementation", "use_cache", "return_dict_in_generate",
    "output_logits", "transformers_version", "_from_model_config", "max_length", "disable_compile",
})
# fields that are harmless at these values (TRL sets repetition_penalty=1.0 explicitly)
NEUTRAL_VALUES = {"repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
                  "length_penalty": (None, 1.0), "num_beams": (None, 1), "num_return_sequences": (None, 1)}
ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def supports_fused_decoding(model) -> bool:
    """True for a plain (merged, unquantised) Llama or Qwen2 causal LM with what the loop computes:
    SiLU MLPs, one weight per projection (``pretraining_tp`` 1), full attention in every layer."""
    if type(model).__name__ not in ARCHITECTURES:
        return False
    config = model.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return (config.hidden_act == "silu" and getattr(config, "pretraining_tp", 1) == 1
            and all(kind == "full_attention" for kind in layer_types)
            and not getattr(config, "use_sliding_window", False)
            and all(type(p) is torch.nn.Parameter for p in model.parameters()))


def decodable(generation_config) -> bool:
    """True for a generation config the loop runs exactly: greedy or sampled with temperature,
    top-k, top-p and min-p, EOS barred before ``min_new_tokens``, stopping at EOS or after
    ``max_new_tokens``, nothing else."""
    from alignkit.training.rollout import sampling_warpers

    if generation_config.max_new_tokens is None or unhandled_fields(generation_config):
        return False
    return not generation_config.do_sample or sampling_warpers(generation_config) is not None


def unhandled_fields(generation_config) -> list[str]:
    """The fields of ``generation_config`` set to something the loop does not do."""
    fields = generation_config.to_diff_dict()
    return sorted(k for k in set(fields) - HANDLED_FIELDS if fields[k] not in NEUTRAL_VALUES.get(k, ()))


def _fuse(linears: list[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias) stacking ``linears``' outputs; each layer's ``weight``/``bias`` then
    becomes a view of it, so that writing a layer's weight (the copy's refresh) writes the fused
    matrix."""
    weight = torch.cat([m.weight.detach() for m in linears])
    bias = None
    if linears[0].bias is not None:
        bias = torch.cat([m.bias.detach() for m in linears])
    start = 0
    for m in linears:
        rows = m.out_features
        m.weight.data = weight[start:start + rows]
        if bias is not None:
            m.bias.data = bias[start:start + rows]
        start += rows
    return weight, bias


class _Layer:
    """One decoder layer's tensors, read by :meth:`FusedDecoder._layers_forward`."""

    def __init__(self, layer, linear):
        attn, mlp = layer.self_attn, layer.mlp
        self.norm1, self.norm2 = layer.input_layernorm, layer.post_attention_layernorm
        self.qkv = linear(*_fuse([attn.q_proj, attn.k_proj, attn.v_proj]))
        self.gate_up = linear(*_fuse([mlp.gate_proj, mlp.up_proj]))
        self.o = linear(attn.o_proj.weight, attn.o_proj.bias)
        self.down = linear(mlp.down_proj.weight, mlp.down_proj.bias)
        self.scaling = attn.scaling

    def linears(self):
        return (self.qkv, self.gate_up, self.o, self.down)


class FusedDecoder:
    """Greedy or sampled decoding of a Llama/Qwen2 model (:func:`supports_fused_decoding`) with the
    few tensor operations a token needs. Shares the model's weights (its fused projections become
    views of the decoder's matrices); call :meth:`repack` after the weights change.

    Args:
        model: the plain causal LM (the inference copy's merged model), in eval mode.
        packed: prepack the matrices for oneDNN (:class:`~alignkit.training.rollout.PackedLinear`).
        batch_hint: the rows the packed layout is tuned for (any number works).
    """

    def __init__(self, model, *, packed: bool, batch_hint: int = 8):
        from alignkit.training.rollout import PackedLinear

        if not supports_fused_decoding(model):
            raise ValueError(f"{type(model).__name__} is not a plain Llama/Qwen2 model FusedDecoder can run")
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads

        def linear(weight, bias=None):
            shell = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                                    device="meta", dtype=weight.dtype)
            shell.weight = torch.nn.Parameter(weight, requires_grad=False)
            shell.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
            return PackedLinear(shell, batch_hint) if packed else shell

        body = model.model
        self.embed, self.rotary, self.norm = body.embed_tokens, body.rotary_emb, body.norm
        self.layers = [_Layer(layer, linear) for layer in body.layers]
        self.head = linear(model.lm_head.weight, model.lm_head.bias)

    @torch.no_grad()
    def repack(self, *, head: bool = True) -> None:
        """Reorder every prepacked matrix from the (changed) weights; ``head=False`` keeps the LM
        head's (a LoRA adapter that leaves it frozen: 57 MB of SmolLM2-135M not reordered)."""
        for layer in self.layers:
            for m in layer.linears():
                if hasattr(m, "repack"):
                    m.repack()
        if head and hasattr(self.head, "repack"):
            self.head.repack()

    def _layers_forward(self, x, position_ids, cache, start: int, mask):
        """Hidden states after every layer for ``x`` (rows, tokens, width) at ``position_ids``;
        writes the new keys and values into ``cache`` at positions ``start:``."""
        rows, tokens, _ = x.shape
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        cos, sin = self.rotary(x, position_ids)
        cos, sin = cos[:, None], sin[:, None]
        end = start + tokens
        for layer, (keys, values) in zip(self.layers, cache, strict=True):
            qkv = layer.qkv(_rms_norm(x, layer.norm1)).view(rows, tokens, h + 2 * kv, d).transpose(1, 2)
            qk = qkv[:, :h + kv]
            qk = qk * cos + torch.cat((-qk[..., d // 2:], qk[..., :d // 2]), -1) * sin  # rotary
            keys[:, :, start:end] = qk[:, h:]
            values[:, :, start:end] = qkv[:, h + kv:]
            if tokens == 1:  # a kv head's query heads as its queries: no repeat of the keys
                att = F.scaled_dot_product_attention(qk[:, :h].reshape(rows, kv, h // kv, d), keys[:, :, :end],
                                                     values[:, :, :end], attn_mask=mask, scale=layer.scaling)
            else:
                att = F.scaled_dot_product_attention(qk[:, :h], keys[:, :, :end], values[:, :, :end],
                                                     attn_mask=mask, scale=layer.scaling, enable_gqa=True)
                att = att.transpose(1, 2)
            x = x + layer.o(att.reshape(rows, tokens, h * d))
            gate, up = layer.gate_up(_rms_norm(x, layer.norm2)).chunk(2, -1)
            x = x + layer.down(F.silu(gate) * up)
        return x

    def _logits(self, x):
        return self.head(_rms_norm(x[:, -1], self.norm)).float()

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generation_config, *,
                 group: int = 1, logprobs: bool = False):
        """``generate(input_ids, attention_mask, generation_config)`` for a config :func:`decodable`
        accepts: the prompt rows (left-padded) and their new tokens, each row padded after its first
        EOS with ``pad_token_id``, stopping when every row has ended or after ``max_new_tokens``.

        ``group``: rows in runs of ``group`` copies of one prompt (GRPO's generations) prefill the
        prompt once and share its keys and values. ``logprobs``: also return each new token's
        ``log_softmax(logits / temperature)`` (rows, new tokens), as
        :meth:`~alignkit.training.rollout.InferenceCopy.generate` does.
        """
        from alignkit.training.rollout import _grouped, inverse_cdf_draw, sampling_warpers

        config = generation_config
        if not decodable(config):
            raise ValueError("FusedDecoder takes greedy or temperature/top-k/top-p/min-p sampling with "
                             f"max_new_tokens set (got {config.max_new_tokens}); this config also sets "
                             f"{unhandled_fields(config)}: use generate")
        warpers = sampling_warpers(config) if config.do_sample else None
        temperature = (config.temperature or 1.0) if config.do_sample else 1.0
        eos = torch.tensor(_as_list(config.eos_token_id), dtype=input_ids.dtype)
        pad = config.pad_token_id if config.pad_token_id is not None else int(eos[0]) if len(eos) else 0

        min_new = config.min_new_tokens or 0
        rows, prompt_len = input_ids.shape
        if not (group > 1 and _grouped(input_ids, group)):
            group = 1
        total = prompt_len + config.max_new_tokens
        dtype = self.embed.weight.dtype
        shape = (rows // group, self.kv_heads, total, self.head_dim)
        cache = [(torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)) for _ in self.layers]
        valid = torch.zeros(rows, total, dtype=torch.bool)
        valid[:, :prompt_len] = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

        # prefill: causal, padding keys masked; a padding query attends to itself (its output is unused)
        firsts = slice(None, None, group)
        causal = torch.ones(prompt_len, prompt_len, dtype=torch.bool).tril()
        mask = causal & valid[firsts, None, :prompt_len] | torch.eye(prompt_len, dtype=torch.bool)
        x = self._layers_forward(self.embed(input_ids[firsts]), positions[firsts], cache, 0, mask[:, None])
        logits = self._logits(x)
        if group > 1:
            cache = [(k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)) for k, v in cache]
            logits = logits.repeat_interleave(group, 0)

        tokens = torch.full((rows, config.max_new_tokens), pad, dtype=input_ids.dtype)
        token_logps = torch.zeros(rows, config.max_new_tokens)
        unfinished = torch.ones(rows, dtype=torch.bool)
        unpadded = bool(attention_mask.all())  # generated tokens (EOS padding too) are all attended
        position = positions[:, -1:]
        made = 0
        while True:
            if logprobs:
                scaled = torch.log_softmax(logits / temperature, -1)
            scores = logits
            if made < min_new and len(eos):  # transformers' MinNewTokensLengthLogitsProcessor
                scores = scores.index_fill(-1, eos, -float("inf"))
            for warper in warpers or ():
                scores = warper(input_ids, scores)
            new = inverse_cdf_draw(scores) if warpers is not None else scores.argmax(-1)
            new = torch.where(unfinished, new, pad)
            tokens[:, made] = new
            if logprobs:
                token_logps[:, made] = scaled.gather(-1, new[:, None]).squeeze(-1)
            made += 1
            unfinished &= ~torch.isin(new, eos)
            if made == config.max_new_tokens or not unfinished.any():
                break
            step = prompt_len + made - 1
            valid[:, step] = True
            position = position + 1
            mask = None if unpadded else valid[:, None, None, :step + 1]
            x = self._layers_forward(self.embed(new[:, None]), position, cache, step, mask)
            logits = self._logits(x)
        sequences = torch.cat([input_ids, tokens[:, :made]], -1)
        return (sequences, token_logps[:, :made]) if logprobs else sequences


def _rms_norm(x: torch.Tensor, norm) -> torch.Tensor:
    """``norm(x)`` of a Llama/Qwen2 RMSNorm as one ``F.rms_norm`` (one rounding to ``x``'s dtype
    where the model's own module rounds twice, so the same up to one bfloat16 unit): 8 x 32
    sampled tokens in 1.48 s against 1.61 s with the module, on a 2-core Intel CPU with AMX."""
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


def _as_list(ids) -> list[int]:
    if ids is None:
        return []
    return [ids] if isinstance(ids, int) else list(ids)
