"""A rough time planner for a GRPO run on one GPU: seconds per optimiser step, and for the run.

Beside ``alignkit.memory`` (will it fit?) this answers "will it finish before Colab disconnects?".
A step is one rollout (TRL generates the whole step's completions in one call: per-device batch x
gradient accumulation) plus the loss's forward and backward over the same tokens:

* rollout, transformers ``generate``: one decoding step per completion token. A 16-bit step reads
  every weight once (memory bound, ``DECODE_BANDWIDTH`` of the card's bandwidth) but never beats
  ``LAUNCH_FLOOR_S`` (Python and kernel launches of an uncompiled decoder, measured typical for
  1-7B models). A bitsandbytes 4-bit step de-quantises every weight, ``BNB_S_PER_PARAM`` per
  parameter on a T4, calibrated on the one public anchor below and scaled by bandwidth elsewhere.
  vLLM: bandwidth bound with CUDA graphs (``VLLM_FLOOR_S``).
* training: 2N FLOPs a token forward, 2N backward through the frozen base (LoRA) or 4N (full
  fine-tuning), one more forward under gradient checkpointing, 2N for a reference model (beta > 0),
  at ``MFU`` of the card's dense 16-bit tensor peak.

Anchor (the only public T4 GRPO figure without vLLM): TRL's QLoRA GRPO notebook, Qwen2-7B, 8 x 256
tokens, 94.5 s a step; this model says 95 s there (:func:`trl_t4_anchor`). Nothing else is
calibrated: ``benchmarks/gpu_check.py`` measures the real s/step on a GPU and records the
planner's error. Introduced with the Colab T4 recipe (``00_start_here/gpu.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from alignkit.memory import get_arch, weight_bytes


@dataclass(frozen=True)
class Gpu:
    """A card's dense 16-bit tensor peak (TFLOP/s) and memory bandwidth (GB/s), from its datasheet."""

    name: str
    tflops: float
    bandwidth_gbs: float


GPUS = {g.name: g for g in [
    Gpu("T4", 65.0, 320.0),  # NVIDIA T4 datasheet: 65 TFLOPS fp16 tensor, 320 GB/s
    Gpu("L4", 121.0, 300.0),  # L4 datasheet: 121 TFLOPS bf16 dense (242 with sparsity), 300 GB/s
    Gpu("A100", 312.0, 1555.0),  # A100 40 GB datasheet: 312 TFLOPS bf16, 1,555 GB/s
    Gpu("H100", 989.0, 3350.0),  # H100 SXM datasheet: 989 TFLOPS bf16 dense, 3.35 TB/s
]}
MFU = 0.35  # model FLOPs utilisation of a LoRA/GRPO training step (typical 30-40% for 1-7B)
DECODE_BANDWIDTH = 0.6  # share of the bandwidth an HF generate decoding step reaches
LAUNCH_FLOOR_S = 0.025  # HF generate: a decoding step is never faster than this
VLLM_FLOOR_S = 0.006  # vLLM with CUDA graphs
BNB_S_PER_PARAM = 4.5e-11  # T4, bitsandbytes NF4 generate: s per parameter per decoding step (anchor)


def _gpu(gpu: str) -> Gpu:
    if gpu not in GPUS:
        raise ValueError(f"gpu {gpu!r} is not one of {', '.join(GPUS)}")
    return GPUS[gpu]


def decode_step_seconds(model: str, *, quant: str | None, gpu: str = "T4", vllm: bool = False) -> float:
    """Seconds of one decoding step of a batch of completions (see the module docstring)."""
    card, arch = _gpu(gpu), get_arch(model)
    read = weight_bytes(arch, None) / (card.bandwidth_gbs * 1e9)
    if vllm:
        return max(VLLM_FLOOR_S, read / 0.8)
    if quant == "4bit":
        return max(LAUNCH_FLOOR_S, arch.n_params * BNB_S_PER_PARAM * GPUS["T4"].bandwidth_gbs / card.bandwidth_gbs)
    return max(LAUNCH_FLOOR_S, read / DECODE_BANDWIDTH)


def step_seconds(model: str, *, quant: str | None = None, lora: bool = True, prompt_tokens: int = 256,
                 completion_tokens: int = 256, sequences: int = 8, grad_ckpt: bool = True,
                 beta: float = 0.0, gpu: str = "T4", vllm: bool = False) -> dict:
    """``{"rollout": s, "train": s, "total": s}`` for one optimiser step over ``sequences``
    completions (per-device batch x gradient accumulation) on one ``gpu``."""
    for name, value in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens),
                        ("sequences", sequences)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    card, n = _gpu(gpu), get_arch(model).n_params
    rollout = completion_tokens * decode_step_seconds(model, quant=quant, gpu=gpu, vllm=vllm)
    per_token = 2 * n + (2 if lora else 4) * n + (2 * n if grad_ckpt else 0) + (2 * n if beta > 0 else 0)
    train = per_token * sequences * (prompt_tokens + completion_tokens) / (card.tflops * 1e12 * MFU)
    return {"rollout": rollout, "train": train, "total": rollout + train}


def recipe_hours(recipe: dict, *, prompt_tokens: int = 256, gpu: str = "T4") -> dict:
    """The estimate for a loaded recipe on one ``gpu``: seconds a step and hours for ``max_steps``."""
    model, grpo = recipe["model"], recipe["grpo"]
    sequences = grpo.get("per_device_train_batch_size", 8) * grpo.get("gradient_accumulation_steps", 1)
    step = step_seconds(model["name"], quant=model.get("quantization"), lora=bool(model.get("lora")),
                        prompt_tokens=prompt_tokens, completion_tokens=grpo.get("max_completion_length", 256),
                        sequences=sequences, grad_ckpt=grpo.get("gradient_checkpointing", True),
                        beta=grpo.get("beta", 0.0), gpu=gpu, vllm=bool(grpo.get("use_vllm")))
    steps = grpo.get("max_steps", 1)
    return {**step, "steps": steps, "hours": step["total"] * steps / 3600}


def trl_t4_anchor() -> float:
    """This model's seconds a step for TRL's QLoRA GRPO notebook on a T4 (published: 94.5 s)."""
    # Qwen2-7B has the shape of Qwen2.5-7B (hidden 3584, 28 layers, 4 KV heads, vocab 152,064)
    return step_seconds("Qwen/Qwen2.5-7B", quant="4bit", prompt_tokens=200, completion_tokens=256,
                        sequences=8)["total"]
