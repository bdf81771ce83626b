"""LoRA dropout on a CPU at a fraction of the random-number cost, with the same distribution.

peft puts an ``nn.Dropout`` in front of every LoRA adapter (210 of them in SmolLM2-135M with
``target_modules="all-linear"``), and torch's CPU ``bernoulli_`` draws one float from the
Mersenne Twister for every element (3.7 ms for 592 x 1536 on a 2-core Intel Sapphire Rapids),
then multiplies by the mask and saves it for the backward pass. At the chapters' ``p = 0.05``
only one element in twenty is dropped, so :class:`GapDropout` draws only where the dropped
elements are: the gaps between successive dropped elements of an i.i.d. Bernoulli(p) sequence
are i.i.d. Geometric(p) (the number of trials up to and including the next success), so the
cumulative sums of about ``n * p`` geometric draws (in float64) are the dropped positions, exactly
the distribution of ``nn.Dropout``'s mask. The output is ``x / (1 - p)`` with those positions
zeroed, and the backward pass zeroes the same positions of the gradient (only the positions are
saved, not a mask). On the GRPO step of benchmarks/grpo_cpu.py (8 x 32 tokens, bf16 autocast,
2-core Intel CPU with AMX) the LoRA forward took 1.2 s with 64-bit-word Bernoulli masks and 1.0 s
with gaps; without any dropout it takes 0.8 s (issue 18). Used by
:class:`alignkit.training.FastGRPOTrainer` on the CPU fast path (every chapter's GRPO on a CPU).
"""

from __future__ import annotations

import math

import torch


def dropped_positions(n: int, p: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The flat indices (sorted, int64) of the elements that a dropout of probability ``p`` drops
    among ``n``: each index in ``[0, n)`` independently with probability ``p``, from torch's
    generator (``generator`` or the global one)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability must be in (0, 1), got {p!r}")
    chunk = _gaps_to_draw(n, p)
    ends = torch.empty(chunk, dtype=torch.float64, device=device).geometric_(p, generator=generator).cumsum_(0)
    while ends[-1] < n:  # the gaps ran out before the end: draw more after the last one
        more = torch.empty(chunk, dtype=torch.float64, device=device).geometric_(p, generator=generator)
        ends = torch.cat([ends, more.cumsum_(0).add_(ends[-1])])
    count = int(torch.searchsorted(ends, float(n), right=True))  # positions 1..n, in trial order
    return ends[:count].long().sub_(1)


def _gaps_to_draw(n: int, p: float) -> int:
    """How many gaps to draw at once: enough to pass ``n`` but about once in 10**9."""
    mean = n * p
    return int(mean + 6.0 * math.sqrt(mean) + 16)


class _ZeroAt(torch.autograd.Function):
    """``x * scale`` with the flat positions ``dropped`` set to zero; the gradient likewise."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dropped: torch.Tensor, scale: float) -> torch.Tensor:
        out = torch.mul(x.contiguous(), scale)
        out.view(-1)[dropped] = 0
        ctx.save_for_backward(dropped)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (dropped,) = ctx.saved_tensors
        grad = torch.mul(grad.contiguous(), ctx.scale)
        grad.view(-1)[dropped] = 0
        return grad, None, None


class GapDropout(torch.nn.Dropout):
    """``nn.Dropout`` (same ``p``, same training/eval behaviour, same mask distribution) whose
    dropped elements come from :func:`dropped_positions`: random numbers for the dropped ``p``
    share of the elements only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _ZeroAt.apply(x, dropped_positions(x.numel(), self.p, x.device), 1.0 / (1.0 - self.p))


def use_fast_dropout(model: torch.nn.Module) -> int:
    """Swap every ``nn.Dropout`` of ``model``'s LoRA adapters (peft's ``lora_dropout``) for a
    :class:`GapDropout` of the same ``p``; returns how many. Other dropouts are left alone."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout and 0 < dropout.p < 1:  # p 1 stays nn.Dropout
                fast = GapDropout(dropout.p, inplace=False)
                fast.train(dropout.training)
                dropouts[name] = fast
                swapped += 1
    return swapped
