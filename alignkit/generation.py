"""Batched sampling from a chat model, with each completion's log-probability under the model.

``sample_completions`` applies the chat template to user messages, samples ``n`` completions per
prompt in batches (with a tqdm bar) and, on request, returns the sum of the token log-probabilities
of each completion under the *unmodified* model (raw logits, so this is ``log pi_ref(y | x)`` even
when ``temperature``/``top_p`` change the sampler). Chapter 4 introduces it for best-of-N on the
bundled model and for estimating KL with sequence probabilities; later chapters reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class Completions:
    """``texts[i][j]``: the j-th completion of prompt i; ``logprobs[i][j]``: its log pi_ref (nats);
    ``lengths[i][j]``: its number of generated tokens (EOS included)."""

    texts: list[list[str]]
    logprobs: list[list[float]]
    lengths: list[list[int]]


def chat_prompts(tokenizer, prompts: list[str]) -> list[str]:
    """Wrap each user message in the tokenizer's chat template, ready for generation."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in prompts]


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int, *,
                       temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 16,
                       seed: int = 0, progress: bool = True) -> Completions:
    """Sample ``n`` completions for every user message in ``prompts``.

    Args:
        model, tokenizer: a causal LM and its tokenizer (left padding, e.g. from
            ``alignkit.models.load_policy`` / ``load_tokenizer``).
        prompts: user messages; the chat template is applied here.
        n: completions per prompt; ``max_new_tokens``: cap on each completion's length.
        temperature, top_p: the sampler (1.0 and 1.0 sample from the model itself).
        batch_size: sequences generated together; ``seed``: makes the samples reproducible.

    Returns a :class:`Completions` with texts, log-probabilities under the model, and lengths.
    """
    if not prompts:
        raise ValueError("prompts is empty; pass at least one user message")
    if n < 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"n, max_new_tokens and batch_size must be >= 1, got {n}, {max_new_tokens}, {batch_size}")
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if tokenizer.padding_side != "left":
        raise ValueError("batched generation needs tokenizer.padding_side == 'left'")
    model.eval()
    texts = [t for t in chat_prompts(tokenizer, prompts) for _ in range(n)]
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    out_text, out_lp, out_len = [], [], []
    for start in tqdm(range(0, len(texts), batch_size), desc="sampling", disable=not progress):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        gen = model.generate(**batch, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             return_dict_in_generate=True, output_logits=True)
        new = gen.sequences[:, batch["input_ids"].shape[1]:]
        logits = torch.stack(gen.logits, dim=1).float()  # (batch, steps, vocab): raw, unprocessed
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, new[..., None]).squeeze(-1)
        # keep tokens up to and including the first EOS
        is_eos = new == tokenizer.eos_token_id
        after_eos = (torch.cumsum(is_eos.int(), dim=1) - is_eos.int()) > 0
        keep = ~after_eos
        out_lp += (token_lp * keep).sum(1).tolist()
        out_len += keep.sum(1).tolist()
        out_text += tokenizer.batch_decode(new, skip_special_tokens=True)
    group = lambda xs: [xs[i * n:(i + 1) * n] for i in range(len(prompts))]  # noqa: E731
    return Completions(group([t.strip() for t in out_text]), group(out_lp), group(out_len))
