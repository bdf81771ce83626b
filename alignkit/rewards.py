"""Reward functions in TRL's format: ``f(prompts, completions, **columns) -> list[float]``.

TRL passes completions either as plain strings or, for conversational prompts, as a list of
messages; ``completion_text`` reads both. Chapter 0 introduces the format with a toy reward;
chapter 1 adds BLEU (BLEUBERI) and chapter 2 the LIMR math reward.
"""

from __future__ import annotations

import re


def completion_text(completion) -> str:
    """The generated text of one TRL completion: a string, or the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    if isinstance(completion, dict) and "content" in completion:
        return str(completion["content"])
    raise TypeError(f"cannot read a completion of type {type(completion).__name__}: {completion!r:.80}")


def word_count(text: str) -> int:
    """Words as runs of letters, digits or apostrophes."""
    return len(re.findall(r"[\w']+", text))


def brevity_reward(completions, target_words: int = 8, **kwargs) -> list[float]:
    """Toy reward of chapter 0: 1 for exactly ``target_words`` words, falling linearly to 0 at
    twice that (or at none), so a model is paid for answering briefly and completely.
    """
    if target_words < 1:
        raise ValueError(f"target_words must be >= 1, got {target_words}")
    scores = []
    for c in completions:
        n = word_count(completion_text(c))
        scores.append(max(0.0, 1.0 - abs(n - target_words) / target_words))
    return scores
