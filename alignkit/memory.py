"""A GPU memory planner for RL fine-tuning (GRPO): will this model and recipe fit on my card?

Peak memory of a GRPO step is the model states (weights, adapter, gradients, optimiser) plus the
larger of two phases that never overlap: rollout (KV cache of the generation batch) and training
(activations and logits of the completions). Each term below is a textbook estimate, named with
its source, and the test suite checks them against published figures (ZeRO, QLoRA) and against
the bundled model measured on CPU. Estimates, not guarantees: allocator fragmentation and kernel
workspaces add a few percent. Used by ``python -m alignkit plan-memory`` and the notebooks'
model pickers (scale-out issue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 2**30


# ------------------------------------------------------------------ shared argument checks

def _check_int(name: str, value, low: int) -> int:
    """An int (not a bool) >= ``low``, else a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__}: {value!r:.80}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return value


def _check_real(name: str, value, *, low: float = 0.0, low_open: bool = False) -> float:
    """A finite real number (not a bool) >= ``low`` (> ``low`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r:.80}")
    if not math.isfinite(value) or value < low or (low_open and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low:g}, got {value!r}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r:.80}")
    return value


def _check_arch(arch) -> Arch:
    if not isinstance(arch, Arch):
        raise TypeError(f"arch must be an alignkit.memory.Arch (see get_arch), got {type(arch).__name__}")
    return arch

# usable memory of common cards, GiB (marketing GB are 10^9 bytes)
CARDS: dict[str, float] = {
    "T4 16 GB": 15.0,
    "24 GB (RTX 3090/4090, A10G, L4)": 22.0,
    "A100 40 GB": 39.4,
    "80 GB (A100, H100)": 79.1,
}
HEADROOM = 0.92  # keep 8% free for fragmentation and kernel workspaces
CUDA_CONTEXT_GIB = 0.8  # CUDA context + cuBLAS/cuDNN workspaces, measured typical on recent drivers


@dataclass(frozen=True)
class Arch:
    """The shape of a decoder-only transformer (Llama / Qwen2 family), from its config.json."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one block: the LoRA targets of ``all-linear``."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, self.intermediate), "up_proj": (h, self.intermediate),
                "down_proj": (self.intermediate, h)}

    @property
    def block_linear_params(self) -> int:
        """Weights of the linear layers of all blocks (what 4-bit quantisation compresses)."""
        return self.layers * sum(i * o for i, o in self.linear_shapes().values())

    @property
    def other_params(self) -> int:
        """Embeddings, LM head (if untied), norms and biases: kept in 16-bit under 4-bit loading."""
        emb = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        norms = self.layers * 2 * self.hidden + self.hidden
        bias = self.layers * (self.hidden + 2 * self.kv_heads * self.head_dim) if self.qkv_bias else 0
        return emb + norms + bias

    @property
    def n_params(self) -> int:
        return self.block_linear_params + self.other_params

    def lora_params(self, r: int) -> int:
        """Adapter parameters for rank ``r`` on every linear layer: r * (in + out) each."""
        r = _check_int("r", r, 1)
        return self.layers * sum(r * (i + o) for i, o in self.linear_shapes().values())


# Shapes from each model's public config.json (hidden_size, num_hidden_layers, ...).
ARCHS: dict[str, Arch] = {a.name: a for a in [
    Arch("HuggingFaceTB/SmolLM2-135M-Instruct", 576, 30, 9, 3, 1536, 49152, True),
    Arch("Qwen/Qwen2.5-0.5B-Instruct", 896, 24, 14, 2, 4864, 151936, True, True),
    Arch("Qwen/Qwen2.5-1.5B-Instruct", 1536, 28, 12, 2, 8960, 151936, True, True),
    Arch("Qwen/Qwen2.5-Math-1.5B", 1536, 28, 12, 2, 8960, 151936, True, True),
    Arch("Qwen/Qwen2.5-3B-Instruct", 2048, 36, 16, 2, 11008, 151936, True, True),
    Arch("Qwen/Qwen2.5-7B-Instruct", 3584, 28, 28, 4, 18944, 152064, False, True),
    Arch("Qwen/Qwen2.5-7B", 3584, 28, 28, 4, 18944, 152064, False, True),
    Arch("Qwen/Qwen2.5-Math-7B", 3584, 28, 28, 4, 18944, 152064, False, True),
    Arch("meta-llama/Llama-2-7b-hf", 4096, 32, 32, 32, 11008, 32000, False),
    Arch("huggyllama/llama-65b", 8192, 80, 64, 64, 22016, 32000, False),
]}
ALIASES = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
           "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
           "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct", "qwen2.5-math-1.5b": "Qwen/Qwen2.5-Math-1.5B",
           "qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B"}


def get_arch(model: str) -> Arch:
    """The architecture of a known model id or short name; unknown ones list what is known."""
    if not isinstance(model, str):
        raise TypeError(f"model must be a model id or short name (a string), got {type(model).__name__}: {model!r:.80}")
    key = ALIASES.get(model.lower(), model)
    if key not in ARCHS:
        raise ValueError(f"unknown model {model!r} for the memory planner; known: "
                         f"{', '.join(list(ALIASES) + list(ARCHS))}. Add its config.json shape to "
                         "alignkit.memory.ARCHS.")
    return ARCHS[key]


def weight_bytes(arch: Arch, quant: str | None, *, dtype_bytes: int = 2) -> float:
    """Frozen/base weights. Unquantised: ``dtype_bytes`` per parameter (2 for bf16/fp16, 4 for
    fp32). 4-bit NF4 with double quantisation (QLoRA): 0.5 bytes per linear weight + 0.127
    bits/param of constants (QLoRA paper, sec. 3); embeddings, head and norms stay unquantised."""
    _check_arch(arch)
    _check_int("dtype_bytes", dtype_bytes, 1)
    if quant is None:
        return float(dtype_bytes) * arch.n_params
    if quant == "4bit":
        return arch.block_linear_params * (4 + 0.127) / 8 + float(dtype_bytes) * arch.other_params
    raise ValueError(f"quant must be None or '4bit', got {quant!r}")


def _check_zero_stage(zero_stage) -> int:
    if isinstance(zero_stage, bool) or not isinstance(zero_stage, int) or zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {zero_stage!r}")
    return zero_stage


def model_state_bytes(n_trainable: float, *, zero_stage: int = 0, n_gpus: int = 1,
                      frozen_weight_bytes: float = 0.0, offload: bool = False) -> float:
    """Mixed-precision AdamW model states per GPU, ZeRO paper (Rajbhandari et al. 2020, sec. 3):
    2 bytes fp16 weights + 2 bytes fp16 gradients + K = 12 bytes optimiser (fp32 master weights,
    momentum, variance) per trainable parameter; ZeRO-1 shards the 12, ZeRO-2 also the gradients,
    ZeRO-3 also the weights, each over ``n_gpus``. ``frozen_weight_bytes`` (a LoRA base model)
    is sharded only under ZeRO-3. ``offload`` (ZeRO-Offload, Ren et al. 2021: DeepSpeed's
    ``offload_optimizer_device: cpu``) moves gradients, optimiser states and the optimiser step
    to CPU memory, keeping the 16-bit weights on the GPU; at stage 3 with
    ``offload_param_device: cpu`` (ZeRO-Infinity) the weight shards live in CPU memory too and
    are gathered layer by layer. Transient communication buckets are left to the headroom."""
    _check_zero_stage(zero_stage)
    _check_int("n_gpus", n_gpus, 1)
    n_trainable = _check_real("n_trainable", n_trainable)
    frozen_weight_bytes = _check_real("frozen_weight_bytes", frozen_weight_bytes)
    _check_bool("offload", offload)
    p, g, os_ = 2.0 * n_trainable, 2.0 * n_trainable, 12.0 * n_trainable
    if zero_stage >= 1:
        os_ /= n_gpus
    if zero_stage >= 2:
        g /= n_gpus
    if zero_stage >= 3:
        p /= n_gpus
        frozen_weight_bytes /= n_gpus
    if offload:
        if zero_stage < 2:
            raise ValueError(f"offload needs ZeRO stage 2 or 3, got zero_stage={zero_stage!r}")
        g, os_ = 0.0, 0.0
        if zero_stage == 3:
            p, frozen_weight_bytes = 0.0, 0.0
    return p + g + os_ + frozen_weight_bytes


def activation_bytes(arch: Arch, tokens: int, *, grad_ckpt: bool) -> float:
    """Training activations for ``tokens`` = batch x sequence length, 16-bit.

    Without checkpointing: 34 * h bytes per token per layer (Korthikanti et al. 2022, eq. 1,
    with fused attention so no s^2 score matrix is kept). With checkpointing: each layer keeps
    only its 2 * h byte input, and one layer at a time is recomputed with the full 34 * h.
    """
    _check_arch(arch)
    _check_int("tokens", tokens, 1)
    _check_bool("grad_ckpt", grad_ckpt)
    per_layer = 34.0 * arch.hidden * tokens
    if grad_ckpt:
        return arch.layers * 2.0 * arch.hidden * tokens + per_layer
    return arch.layers * per_layer


def logits_bytes(arch: Arch, tokens: int) -> float:
    """Logits in float32 for log-probabilities and their gradient: 2 x 4 bytes x vocab per token.
    With a 152k vocabulary this is often the largest single term of a GRPO step."""
    _check_arch(arch)
    _check_int("tokens", tokens, 1)
    return 8.0 * arch.vocab * tokens


def kv_cache_bytes(arch: Arch, sequences: int, seq_len: int) -> float:
    """KV cache for generating ``sequences`` rollouts of ``seq_len`` tokens, 16-bit:
    2 (K and V) x layers x kv_heads x head_dim x 2 bytes per token."""
    _check_arch(arch)
    _check_int("sequences", sequences, 1)
    _check_int("seq_len", seq_len, 1)
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * 2.0 * sequences * seq_len


@dataclass
class MemoryPlan:
    """Estimated peak GPU memory per device, by component, in GiB."""

    model: str
    settings: dict
    parts: dict[str, float]
    vllm_share: float = 0.0  # fraction of every card that a colocated vLLM engine reserves
    vllm_weights_gib: float = 0.0  # the 16-bit weights that must fit inside that share

    @property
    def total_gib(self) -> float:
        """The training process's peak per GPU (without a colocated vLLM engine's share)."""
        return sum(self.parts.values())

    def peak_gib(self, card_gib: float) -> float:
        """Peak per GPU on a card of ``card_gib``: training plus vLLM's reserved share, if any."""
        card_gib = _check_real("card_gib", card_gib, low_open=True)
        return self.total_gib + self.vllm_share * card_gib

    def fits(self) -> dict[str, bool]:
        """Which common cards hold the estimated peak with 8% headroom (and, with vLLM colocated,
        whose reserved share can hold vLLM's own copy of the weights)."""
        return {card: self.peak_gib(cap) <= HEADROOM * cap and self.vllm_weights_gib <= self.vllm_share * cap
                if self.vllm_share else self.total_gib <= HEADROOM * cap for card, cap in CARDS.items()}

    def table(self) -> str:
        """A plain-text breakdown and verdict per card."""
        lines = [f"{self.model}  " + ", ".join(f"{k}={v}" for k, v in self.settings.items())]
        lines += [f"  {k:<52s} {v:8.2f} GiB" for k, v in self.parts.items()]
        lines.append(f"  {'estimated peak per GPU (training)':<52s} {self.total_gib:8.2f} GiB")
        if self.vllm_share:
            lines.append(f"  {'+ vLLM colocate: reserves this share of each card':<52s} "
                         f"{self.vllm_share:8.0%}   (its 16-bit weights: {self.vllm_weights_gib:.1f} GiB)")
        for card, ok in self.fits().items():
            peak = f"{self.peak_gib(CARDS[card]):.1f} GiB" if self.vllm_share else ""
            lines.append(f"  {card:<52s} {'fits' if ok else 'does not fit'} {peak}".rstrip())
        return "\n".join(lines)


def plan_memory(model: str, *, quant: str | None = None, lora_r: int | None = None,
                seq_len: int = 1024, generations: int = 8, grad_ckpt: bool = True,
                zero_stage: int = 0, n_gpus: int = 1, beta: float = 0.0, offload: bool = False,
                adapter_bytes_per_param: float = 16.0, cuda_context: bool = True,
                vllm: str | None = None, vllm_gpu_memory_utilization: float = 0.3) -> MemoryPlan:
    """Estimate the peak GPU memory of one GRPO step per device.

    Args:
        model: a model id or short name known to ``ARCHS``.
        quant: ``None`` (16-bit) or ``"4bit"`` (NF4 + double quantisation, needs ``lora_r``).
        lora_r: LoRA rank on all linear layers; ``None`` means full fine-tuning.
        seq_len: prompt + completion tokens per sequence.
        generations: sequences per device per step (rollout batch = training micro-batch).
        grad_ckpt: gradient (activation) checkpointing during the backward pass.
        zero_stage, n_gpus: DeepSpeed ZeRO stage and data-parallel degree.
        offload: ZeRO-Offload of optimiser states (and, at stage 3, weights) to CPU memory.
        beta: GRPO KL coefficient; > 0 keeps a frozen reference model (shared base with LoRA).
        adapter_bytes_per_param: 16 for peft's default fp32 adapters (4 weight + 4 gradient +
            8 Adam); 12 for bf16 adapters with fp32 Adam moments, as in the QLoRA paper.
        vllm: ``None`` (rollouts with transformers' ``generate`` in the training process),
            ``"colocate"`` (a vLLM engine on every training GPU that reserves
            ``vllm_gpu_memory_utilization`` of the card for its weights and KV cache) or
            ``"server"`` (vLLM on other GPUs: nothing on the training GPUs). With vLLM the
            training process holds no rollout KV cache.
    """
    arch = get_arch(model)
    if quant not in (None, "4bit"):
        raise ValueError(f"quant must be None or '4bit', got {quant!r}")
    if quant == "4bit" and lora_r is None:
        raise ValueError("quant='4bit' needs lora_r: 4-bit weights cannot be trained directly (QLoRA)")
    for name, value in (("seq_len", seq_len), ("generations", generations)):
        _check_int(name, value, 1)
    if lora_r is not None:
        if isinstance(lora_r, bool) or not isinstance(lora_r, int):
            raise TypeError(f"lora_r must be an int >= 1 or None (full fine-tuning), got {lora_r!r}")
        if lora_r < 1:
            raise ValueError(f"lora_r must be >= 1 or None (full fine-tuning), got {lora_r!r}")
    _check_zero_stage(zero_stage)
    _check_int("n_gpus", n_gpus, 1)
    for name, flag in (("grad_ckpt", grad_ckpt), ("offload", offload), ("cuda_context", cuda_context)):
        _check_bool(name, flag)
    if offload and zero_stage < 2:
        raise ValueError(f"offload needs ZeRO stage 2 or 3, got zero_stage={zero_stage!r}")
    _check_real("beta", beta)
    _check_real("adapter_bytes_per_param", adapter_bytes_per_param, low_open=True)
    if vllm not in (None, "colocate", "server"):
        raise ValueError(f"vllm must be None, 'colocate' or 'server', got {vllm!r}")
    _check_real("vllm_gpu_memory_utilization", vllm_gpu_memory_utilization)
    if vllm == "colocate" and not 0 < vllm_gpu_memory_utilization < HEADROOM:
        raise ValueError(f"vllm_gpu_memory_utilization must be in (0, {HEADROOM}), "
                         f"got {vllm_gpu_memory_utilization!r}")
    tokens = seq_len * generations
    parts: dict[str, float] = {}
    if lora_r is None:
        label = ("weights+grads+optimizer: offloaded to CPU" if offload and zero_stage == 3 else
                 "weights (grads+optimizer offloaded to CPU)" if offload else "weights+grads+optimizer (16 B/param)")
        parts[label] = model_state_bytes(arch.n_params, zero_stage=zero_stage, n_gpus=n_gpus,
                                         offload=offload) / GIB
        if beta > 0 and not (offload and zero_stage == 3):  # ZeRO-3 offload keeps it in CPU memory too
            parts["reference model (16-bit)"] = weight_bytes(arch, None) / (n_gpus if zero_stage == 3 else 1) / GIB
    else:
        parts["base weights" + (" (4-bit NF4)" if quant else " (16-bit)")] = weight_bytes(arch, quant) / (
            n_gpus if zero_stage == 3 else 1) / GIB
        parts[f"LoRA r={lora_r} adapter+grads+Adam"] = adapter_bytes_per_param * arch.lora_params(lora_r) / GIB
    train = activation_bytes(arch, tokens, grad_ckpt=grad_ckpt) + logits_bytes(arch, tokens)
    if vllm is None:
        rollout = kv_cache_bytes(arch, generations, seq_len)
        label = "max(rollout KV cache, activations+logits)"
        if zero_stage == 3:  # TRL gathers the sharded weights for generate (ds3_gather_for_generation)
            rollout += weight_bytes(arch, quant) * (1.0 if offload else 1.0 - 1.0 / n_gpus)
            label = "max(rollout KV cache + gathered weights, activations+logits)"
        parts[label] = max(rollout, train) / GIB
    else:
        parts["activations+logits (rollouts in vLLM)"] = train / GIB
    if cuda_context:
        parts["CUDA context and workspaces"] = CUDA_CONTEXT_GIB
    settings = dict(quant=quant or "16-bit", lora_r=lora_r or "full", seq_len=seq_len,
                    generations=generations, grad_ckpt=grad_ckpt, zero=zero_stage, gpus=n_gpus)
    if offload:
        settings["offload"] = "cpu"
    if vllm:
        settings["vllm"] = vllm
    if vllm == "colocate":
        return MemoryPlan(arch.name, settings, parts, vllm_share=vllm_gpu_memory_utilization,
                          vllm_weights_gib=weight_bytes(arch, None) / GIB)
    return MemoryPlan(arch.name, settings, parts)
