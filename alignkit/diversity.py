"""Diversity and drift of a language-model policy during RL: distinct-n, entropy, KL to the reference.

Distribution collapse (chapter 3) shows up on a real LM as fewer distinct n-grams among the
completions for one prompt, lower per-token entropy, and a growing KL from the reference model.
:class:`DiversityTracker` wraps a TRL reward function and, on every GRPO step, logs these for the
batch of completions the trainer has just sampled, through TRL's ``log_metric`` hook.
Chapter 3 introduces this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from alignkit.rewards import completion_text


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over ``texts`` (1.0 = no repeats).

    Words are whitespace-split and lower-cased; texts shorter than ``n`` words contribute nothing.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def keyword_reward(keyword: str) -> Callable:
    """A TRL reward function: 1.0 when the completion contains ``keyword`` (case-sensitive), else 0.0.

    With ``keyword="Paris"`` it is the "mentions Paris" reward of the paper's Figure 1 example.
    """
    if not keyword:
        raise ValueError("keyword must be a non-empty string")

    def reward(completions, **kwargs) -> list[float]:
        return [float(keyword in completion_text(c)) for c in completions]

    reward.__name__ = f"contains_{keyword.lower()}"
    return reward


@torch.no_grad()
def sequence_logprobs(model, prompt_ids: Sequence[Sequence[int]],
                      completion_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """``log pi(completion | prompt)`` summed over completion tokens, one value per pair.

    Runs one right-padded batch through ``model`` in eval mode (no dropout), at temperature 1.
    """
    rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    width = max(len(r) for r in rows)
    device = next(model.parameters()).device
    ids = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    was_training = model.training
    model.eval()
    try:
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    finally:
        model.train(was_training)
    logp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:].unsqueeze(2)).squeeze(2)
    out = []
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        out.append(logp[i, len(p) - 1:len(p) - 1 + len(c)].sum())  # position t predicts token t+1
    return torch.stack(out)


class DiversityTracker:
    """Wrap a TRL reward function; per step, log distinct-n and the KL to the reference model.

    Set ``tracker.model`` to the trainer's (peft) model after building the trainer. Each call
    returns the wrapped rewards unchanged and logs, for the completions just sampled:
    ``distinct_1``, ``distinct_2``, ``kl_ref`` (mean of ``log pi - log pi_ref`` per completion: a
    Monte Carlo estimate of the sequence-level ``KL(pi || pi_ref)`` of chapter 3, the reference
    being the model with its LoRA adapter disabled), and ``nll_per_token`` (a sampled estimate of
    the per-token entropy). It logs for beta = 0 too, where TRL itself computes no KL.
    """

    def __init__(self, reward_fn: Callable, tokenizer, model=None):
        self.reward_fn = reward_fn
        self.tokenizer = tokenizer
        self.model = model
        self.__name__ = getattr(reward_fn, "__name__", "reward")  # TRL logs rewards by name

    def _prompt_ids(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]

    def __call__(self, prompts, completions, completion_ids=None, log_metric=None, **kwargs):
        rewards = self.reward_fn(prompts=prompts, completions=completions, **kwargs)
        if log_metric is None:
            return rewards
        texts = [completion_text(c) for c in completions]
        log_metric("distinct_1", distinct_n(texts, 1))
        log_metric("distinct_2", distinct_n(texts, 2))
        if self.model is not None and completion_ids is not None:
            prompt_ids = [self._prompt_ids(p) for p in prompts]
            logp = sequence_logprobs(self.model, prompt_ids, completion_ids)
            with self.model.disable_adapter():
                logp_ref = sequence_logprobs(self.model, prompt_ids, completion_ids)
            tokens = sum(len(c) for c in completion_ids)
            log_metric("kl_ref", float((logp - logp_ref).mean()))
            log_metric("nll_per_token", float(-logp.sum() / max(tokens, 1)))
        return rewards
