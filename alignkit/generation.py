"""The one sampling / greedy-decoding loop: batched generation from a chat model.

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

from alignkit.runtime import progress_bars


@dataclass
class Completions:
    """``texts[i][j]``: the j-th completion of prompt i; ``logprobs[i][j]``: its log pi_ref (nats);
    ``lengths[i][j]``: its number of generated tokens (EOS included)."""

    texts: list[list[str]]
    logprobs: list[list[float]]
    lengths: list[list[int]]


def chat_prompts(tokenizer, prompts) -> list[str]:
    """Each prompt in the tokenizer's chat template, ready for generation.

    A prompt is a user message (a string) or a whole conversation (a list of ``{"role",
    "content"}`` messages, e.g. with a system prompt, as in TRL's conversational format).
    """
    out = []
    for p in prompts:
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        out.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return out


@torch.no_grad()
def greedy_completions(model, tokenizer, prompts, *, max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Greedy answers to ``prompts`` (user messages or conversations), batched with left padding.

    The held-out evaluations of chapters 1 and 2 use it before and after training. The model is
    put in eval mode for the loop and left in the mode it had.
    """
    if len(prompts) == 0:
        raise ValueError("prompts is empty; pass at least one user message or conversation")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts, out = chat_prompts(tokenizer, prompts), []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        gen = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        new = gen[:, batch["input_ids"].shape[1]:]
        out += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    model.train(was_training)
    return out


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int, *,
                       temperature: float = 1.0, top_p: float = 1.0, batch_size: int = 16,
                       seed: int = 0, progress: bool | None = None) -> Completions:
    """Sample ``n`` completions for every user message in ``prompts``.

    Args:
        model, tokenizer: a causal LM and its tokenizer (left padding, e.g. from
            ``alignkit.models.load_policy`` / ``load_tokenizer``).
        prompts: user messages; the chat template is applied here.
        n: completions per prompt; ``max_new_tokens``: cap on each completion's length.
        temperature, top_p: the sampler (1.0 and 1.0 sample from the model itself).
        batch_size: sequences generated together; ``seed``: makes the samples reproducible.
        progress: show a bar over the batches (default: unless ``TQDM_DISABLE`` is set,
            ``alignkit.runtime.progress_bars``).

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
    show = progress_bars() if progress is None else progress
    for start in tqdm(range(0, len(texts), batch_size), desc="sampling", disable=not show):
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
