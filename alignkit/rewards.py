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


# ---------------------------------------------------------------------------------------------
# LIMR math reward (chapter 2): +1 correct, -0.5 wrong but well formatted, -1 format error.
# Rules of the released code (GAIR-NLP/LIMR openrlhf/cli/serve_rm.py --mode rule), with one fix:
# both answers are wrapped in $...$ before math_verify.parse (the paper's bare parsing reads
# (5,7) or \dfrac{11}{16} as nothing and 2\sqrt{3} as 2; wrap_dollars=False reproduces it).
# ---------------------------------------------------------------------------------------------

LIMR_CORRECT, LIMR_WRONG, LIMR_FORMAT_ERROR = 1.0, -0.5, -1.0
# characters the released code counts as valid: ASCII letters, digits, whitespace, punctuation
# and the Unicode "Mathematical Operators" block U+2200-U+22FF; more than 30% others = garbled
_VALID_CHAR = re.compile(r"[a-zA-Z0-9\s\.,!?\"'\(\)\{\}\[\]_\-+=<>/@#$%^&*\\|:;~`\u2200-\u22FF]")
_REPEAT = re.compile(r"(.{5,}?)\1{4,}")  # a chunk of >= 5 characters repeated >= 5 times in a row
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i + 1:j]
        start = text.rfind("\\boxed{", 0, start)  # unbalanced: try the one before
    return None


def limr_format_error(text: str, *, require_stop: bool = False) -> str | None:
    """Why the LIMR reward would give ``text`` -1 before checking the answer, or None if well formed.

    The released code's checks: no ``\\boxed``, ``\\boxed`` 5 or more times, more than 30% of
    characters outside its whitelist (garbled), a chunk of >= 5 characters repeated >= 5 times.
    ``require_stop=True`` also demands ``<|im_end|>`` or ``<|endoftext|>`` (the code's truncation
    check; TRL decodes completions without special tokens, so it is off by default there).
    """
    if require_stop and not any(t in text for t in _STOP_TOKENS):
        return "no stop token (truncated)"
    n_boxed = text.count("\\boxed")
    if n_boxed == 0 or last_boxed(text) is None:
        return "no \\boxed{} answer"
    if n_boxed >= 5:
        return f"\\boxed appears {n_boxed} times (>= 5)"
    if text and len(_VALID_CHAR.sub("", text)) / len(text) > 0.3:
        return "garbled: more than 30% of characters outside the whitelist"
    if _REPEAT.search(text):
        return "repeated text: a chunk of >= 5 characters repeats >= 5 times in a row"
    return None


def answers_match(gold: str, pred: str, *, wrap_dollars: bool = True) -> bool:
    """``math_verify.verify(parse(gold), parse(pred))``, both wrapped in ``$...$`` by default."""
    from math_verify import parse, verify

    if wrap_dollars:
        gold, pred = f"${gold}$", f"${pred}$"
    return bool(verify(parse(gold), parse(pred)))


def limr_math_reward(completion: str, answer: str, *, wrap_dollars: bool = True,
                     require_stop: bool = False) -> float:
    """LIMR's rule reward for one completion: +1 correct, -0.5 wrong but well formed, -1 format error.

    The last ``\\boxed{}`` is compared with the gold ``answer`` by math-verify (any exception
    counts as -1, as in the released code). ``wrap_dollars=False`` parses the bare strings like
    the paper did, so e.g. ``2\\sqrt{5}`` "equals" ``2\\sqrt{3}`` and ``(5,7)`` never matches.
    """
    text = completion_text(completion)
    if limr_format_error(text, require_stop=require_stop) is not None:
        return LIMR_FORMAT_ERROR
    try:
        ok = answers_match(str(answer), last_boxed(text), wrap_dollars=wrap_dollars)
    except Exception:  # noqa: BLE001 - the released code scores any verifier failure as -1
        return LIMR_FORMAT_ERROR
    return LIMR_CORRECT if ok else LIMR_WRONG


def limr_reward(completions, answer, wrap_dollars: bool = True, **kwargs) -> list[float]:
    """TRL reward function: :func:`limr_math_reward` of each completion against the ``answer``
    column (TRL passes dataset columns as keyword lists, one entry per completion).
    """
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    pairs = zip(completions, answer, strict=True)
    return [limr_math_reward(c, a, wrap_dollars=wrap_dollars) for c, a in pairs]
