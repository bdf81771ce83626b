"""Measure a model: batched generation throughput, and how far two models' predictions differ.

Introduced in chapter 0 (full precision vs 4-bit); ``benchmarks/`` scripts use the same code.
"""

from __future__ import annotations

import time

import torch


def _new_token_counts(new_tokens: torch.Tensor, eos_ids: set[int]) -> list[int]:
    """Tokens generated per row, up to and including the first end-of-sequence token."""
    counts = []
    for row in new_tokens.tolist():
        n = len(row)
        for i, tok in enumerate(row):
            if tok in eos_ids:
                n = i + 1
                break
        counts.append(n)
    return counts


@torch.inference_mode()
def generation_throughput(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 32,
                          do_sample: bool = False, warmup: bool = True) -> dict:
    """Generate one reply per prompt (user messages, chat template applied) in a single batch.

    Returns ``{"tokens", "seconds", "tokens_per_s", "texts"}`` where ``tokens`` counts real new
    tokens (padding after an end-of-sequence token is not counted).
    """
    if not prompts:
        raise ValueError("prompts is empty; give at least one prompt")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    messages = [[{"role": "user", "content": p}] for p in prompts]
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, padding=True,
                                          return_tensors="pt", return_dict=True).to(model.device)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id)
    if warmup:  # first call pays one-off costs (allocations, kernel choice)
        model.generate(**{k: v[:1] for k, v in batch.items()}, **{**kwargs, "max_new_tokens": 2})
    start = time.perf_counter()
    out = model.generate(**batch, **kwargs)
    seconds = time.perf_counter() - start
    new = out[:, batch["input_ids"].shape[1]:]
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    eos |= set(getattr(model.generation_config, "eos_token_id", None) or []) if isinstance(
        getattr(model.generation_config, "eos_token_id", None), list) else set()
    tokens = sum(_new_token_counts(new, eos))
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "texts": texts}


@torch.inference_mode()
def next_token_kl(model_p, model_q, tokenizer, texts: list[str]) -> float:
    """Mean over positions of KL(p(.|prefix) || q(.|prefix)) in nats, on the given texts.

    A direct measure of how much a change to a model (4-bit quantisation, a LoRA update) moves
    its predictions, averaged over every real (non-padding) position of ``texts``.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("texts is empty (or all blank); give at least one non-empty text")
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(model_p.device)
    logp = torch.log_softmax(model_p(**batch).logits.float(), dim=-1)
    logq = torch.log_softmax(model_q(**batch).logits.float().to(logp.device), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    mask = batch["attention_mask"].bool()
    return float(kl[mask].mean())
