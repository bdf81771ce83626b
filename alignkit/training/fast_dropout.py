"""LoRA dropout on a CPU at a third of the random-number cost, with the same distribution.

peft puts an ``nn.Dropout`` in front of every LoRA adapter (210 of them in SmolLM2-135M with
``target_modules="all-linear"``), and torch's CPU ``bernoulli_`` draws one float from the
Mersenne Twister for every element (3.7 ms for 592 x 1536 on a 2-core Intel Sapphire Rapids;
the GRPO step of benchmarks/grpo_cpu.py, 8 x 32 tokens, went from 3.02 s to 2.93 s with
:class:`BitsDropout`, issue 18). :class:`BitsDropout` draws
64 random bits at a time and keeps an element when its 32 bits are at or above ``p * 2**32``:
the same Bernoulli(1 - p) mask up to 2**-32 in the probability (float32 ``rand`` resolves
2**-24), scaled by ``1 / (1 - p)`` like ``nn.Dropout``. Used by
:class:`alignkit.training.FastGRPOTrainer` on the CPU fast path (every chapter's GRPO on a CPU).
"""

from __future__ import annotations

import torch


def keep_mask(shape: torch.Size, p: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean tensor of ``shape``, each element True with probability ``1 - p`` (to 2**-32),
    independently, from torch's generator (``generator`` or the global one)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}")
    n = 1
    for size in shape:
        n *= size
    # all 64 bits random (a plain random_() leaves an int64's sign bit 0), two int32 draws a word
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-2**63, None, generator=generator)
    halves = words.view(torch.int32)[:n]
    threshold = round(p * 2**32) - 2**31  # uniform int32 in [-2**31, 2**31): P(x >= t) = 1 - p
    return (halves >= threshold).view(shape)


class BitsDropout(torch.nn.Dropout):
    """``nn.Dropout`` (same ``p``, same training/eval behaviour) whose mask comes from
    :func:`keep_mask`: a third of ``bernoulli_``'s random-number cost on a CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = keep_mask(x.shape, self.p, x.device)
        return x * mask.to(x.dtype) * (1.0 / (1.0 - self.p))


def use_bits_dropout(model: torch.nn.Module) -> int:
    """Swap every ``nn.Dropout`` of ``model``'s LoRA adapters (peft's ``lora_dropout``) for a
    :class:`BitsDropout` of the same ``p``; returns how many. Other dropouts are left alone."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout and 0 < dropout.p < 1:  # p 1 stays nn.Dropout
                fast = BitsDropout(dropout.p, inplace=False)
                fast.train(dropout.training)
                dropouts[name] = fast
                swapped += 1
    return swapped
