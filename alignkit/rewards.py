"""Reward functions in TRL's format: ``f(prompts, completions, **columns) -> list[float]``.

TRL passes completions either as plain strings or, for conversational prompts, as a list of
messages; ``completion_text`` reads both. Chapter 0 introduces the format with a toy reward;
chapter 1 adds BLEU (BLEUBERI-exact), ROUGE-L and their harmonic mean, and chapter 2 the LIMR
math reward.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache


def _type_name(value) -> str:
    return type(value).__name__


def _check_str(name: str, value, *, nonempty: bool = False) -> str:
    """``value`` if it is a string (a non-blank one with ``nonempty``), else a TypeError/ValueError naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {_type_name(value)}: {value!r:.80}")
    if nonempty and not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r:.80}")
    return value


def _check_texts(name: str, value) -> list:
    """``value`` as a list: a list/tuple (or other sequence) of items, one per completion or row.

    A bare string, bytes, a dict, None or a scalar raise a TypeError naming ``name``: a string
    would otherwise be iterated one character at a time.
    """
    if isinstance(value, (str, bytes, dict)) or value is None or not hasattr(value, "__len__") \
            or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list (one entry per completion/row), got "
                        f"{_type_name(value)}: {value!r:.80}" + ("; wrap one string in a list"
                                                                if isinstance(value, str) else ""))
    return list(value)


def _check_number(name: str, value, *, low: float | None = None) -> float:
    """A finite real number (not a bool) >= ``low``, else a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a real number, got {_type_name(value)}: {value!r:.80}")
    x = float(value)
    if not math.isfinite(x) or (low is not None and x < low):
        bound = f" >= {low:g}" if low is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return x


def completion_text(completion) -> str:
    """The generated text of one TRL completion: a string, or the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        completion = completion[-1]
    if isinstance(completion, dict) and "content" in completion:
        content = completion["content"]
        if not isinstance(content, str):
            raise TypeError(f"completion message content must be a string, got {_type_name(content)}: "
                            f"{content!r:.80}")
        return content
    raise TypeError(f"completion must be a string, a list of messages ending in a "
                    f"{{'role', 'content'}} dict, or such a dict; got {_type_name(completion)}: "
                    f"{completion!r:.80}")


def word_count(text: str) -> int:
    """Words as runs of letters, digits or apostrophes."""
    return len(re.findall(r"[\w']+", _check_str("text", text)))


def brevity_reward(completions, target_words: int = 10, **kwargs) -> list[float]:
    """Toy reward of chapter 0: ``min(n, t) / max(n, t)`` for a reply of ``n`` words and target
    ``t``: 1 at exactly ``t`` words, 0.5 at half or twice that, never exactly 0 for a non-empty
    reply, so every group of long replies still has a gradient towards the shorter ones.
    """
    target_words = _check_number("target_words", target_words, low=1)
    scores = []
    for c in _check_texts("completions", completions):
        n = word_count(completion_text(c))
        scores.append(min(n, target_words) / max(n, target_words))
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


_BOXED = "\\boxed{"
_BRACE = re.compile(r"[{}]")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None.

    The last ``\\boxed{`` whose brace is closed wins (an unclosed later one is skipped). One
    left-to-right pass over the braces with a depth counter and a stack of the open boxes, so
    linear in ``len(text)`` even for thousands of nested ``\\boxed{``.
    """
    text = _check_str("text", text)
    boxes, start = set(), text.find(_BOXED)
    while start != -1:  # positions of the "{" of every \boxed{ (occurrences cannot overlap)
        boxes.add(start + len(_BOXED) - 1)
        start = text.find(_BOXED, start + len(_BOXED))
    if not boxes:
        return None
    depth, open_boxes, best = 0, [], None  # open_boxes: (brace position, depth inside it)
    for m in _BRACE.finditer(text):
        i = m.start()
        if text[i] == "{":
            depth += 1
            if i in boxes:
                open_boxes.append((i, depth))
        elif depth > 0:  # a "}" with nothing open is ignored
            if open_boxes and open_boxes[-1][1] == depth:
                i_open = open_boxes.pop()[0]
                if best is None or i_open > best[0]:
                    best = (i_open, i)
            depth -= 1
    return None if best is None else text[best[0] + 1:best[1]]


def limr_format_error(text: str, *, require_stop: bool = False) -> str | None:
    """Why the LIMR reward would give ``text`` -1 before checking the answer, or None if well formed.

    The released code's checks: no ``\\boxed``, ``\\boxed`` 5 or more times, more than 30% of
    characters outside its whitelist (garbled), a chunk of >= 5 characters repeated >= 5 times.
    ``require_stop=True`` also demands ``<|im_end|>`` or ``<|endoftext|>`` (the code's truncation
    check; TRL decodes completions without special tokens, so it is off by default there).
    """
    text = _check_str("text", text)
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

    gold, pred = _check_str("gold", gold), _check_str("pred", pred)
    if wrap_dollars:
        gold, pred = f"${gold}$", f"${pred}$"
    return bool(verify(parse(gold), parse(pred)))


def _check_answer(answer) -> str:
    """A gold answer as a non-empty string (ints are accepted and read as their digits)."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return str(answer)
    return _check_str("answer", answer, nonempty=True)


def limr_math_reward(completion: str, answer: str, *, wrap_dollars: bool = True,
                     require_stop: bool = False) -> float:
    """LIMR's rule reward for one completion: +1 correct, -0.5 wrong but well formed, -1 format error.

    The last ``\\boxed{}`` is compared with the gold ``answer`` by math-verify (any exception
    counts as -1, as in the released code). ``wrap_dollars=False`` parses the bare strings like
    the paper did, so e.g. ``2\\sqrt{5}`` "equals" ``2\\sqrt{3}`` and ``(5,7)`` never matches.
    ``answer`` is a non-empty string (an int is read as its digits); None, NaN or an empty
    answer raise, since no completion could be scored against it.
    """
    answer = _check_answer(answer)
    text = completion_text(completion)
    if limr_format_error(text, require_stop=require_stop) is not None:
        return LIMR_FORMAT_ERROR
    try:
        ok = answers_match(answer, last_boxed(text), wrap_dollars=wrap_dollars)
    except Exception:  # noqa: BLE001 - the released code scores any verifier failure as -1
        return LIMR_FORMAT_ERROR
    return LIMR_CORRECT if ok else LIMR_WRONG


def limr_reward(completions, answer, wrap_dollars: bool = True, **kwargs) -> list[float]:
    """TRL reward function: :func:`limr_math_reward` of each completion against the ``answer``
    column (TRL passes dataset columns as keyword lists, one entry per completion).
    """
    completions = _check_texts("completions", completions)
    answer = _check_texts("answer", answer)
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers; pass one answer per completion")
    pairs = zip(completions, answer, strict=True)
    return [limr_math_reward(c, a, wrap_dollars=wrap_dollars) for c, a in pairs]


# --------------------------------------------------------------------------------------------
# Chapter 1 (BLEUBERI): BLEU, ROUGE-L and their harmonic mean as rewards
# --------------------------------------------------------------------------------------------

BLEU_MAX_ORDER = 4


@lru_cache(maxsize=1)
def _tokenizer_13a():
    """sacrebleu's 13a tokenizer (the one BLEUBERI's BLEU uses), built once."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokenize_13a(text: str) -> list[str]:
    """Split ``text`` into tokens the way the BLEUBERI reward does (13a, case kept)."""
    return _tokenizer_13a()(_check_str("text", text).strip()).split()


def _ngram_counts(tokens: list[str], max_order: int) -> Counter:
    """Counts of every n-gram of ``tokens`` for n = 1..max_order, keyed by tuple."""
    counts: Counter = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def _check_references(references) -> list[str]:
    """The references as a list of non-empty strings, or a TypeError/ValueError saying what is wrong.

    An empty (or whitespace-only) reference is refused: it has no tokens, so BLEU would score
    any hypothesis against nothing (and switch off the brevity penalty of the others).
    """
    if isinstance(references, str):
        raise ValueError("references must be a list of strings, got one string; wrap it: [reference]")
    if isinstance(references, (bytes, dict)) or not hasattr(references, "__iter__"):
        raise TypeError(f"references must be a non-empty list of strings, got {_type_name(references)}: "
                        f"{references!r:.80}")
    refs = list(references)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ValueError(f"references must be a non-empty list of strings, got {references!r:.120}")
    empty = [i for i, r in enumerate(refs) if not r.strip()]
    if empty:
        raise ValueError(f"references must be non-empty strings; reference {empty[0]} of {len(refs)} "
                         f"is {refs[empty[0]]!r} (drop such rows before scoring)")
    return refs


def bleu(hypothesis: str, references: list[str]) -> float:
    """Sentence BLEU in [0, 1] exactly as BLEUBERI's reward computes it (chapter 1).

    BLEUBERI calls ``evaluate.load("bleu")`` with ``smooth=True`` (Google's TF-NMT BLEU); this
    is the same formula, on sacrebleu's 13a tokenizer, so it runs offline:

    - tokens: 13a, case-sensitive; n-grams up to 4;
    - matches clipped by the *maximum* count of the n-gram over the references;
    - add-one smoothing on every order, unigrams included: ``p_n = (m_n + 1) / (c_n + 1)``;
    - brevity penalty against the *shortest* reference: ``BP = exp(1 - r/c)`` when ``c <= r``;
    - an empty (or whitespace-only) hypothesis scores 0.

    It differs from ``sacrebleu.sentence_bleu`` (which smooths differently and picks the
    reference closest in length); ``tests/test_bleu.py`` shows where the two agree.
    """
    refs = _check_references(references)
    hyp = tokenize_13a(_check_str("hypothesis", hypothesis))
    if not hyp:
        return 0.0
    ref_tokens = [tokenize_13a(r) for r in refs]
    max_ref_counts: Counter = Counter()
    for toks in ref_tokens:
        max_ref_counts |= _ngram_counts(toks, BLEU_MAX_ORDER)  # | keeps the maximum count
    matches = [0] * BLEU_MAX_ORDER
    for gram, count in _ngram_counts(hyp, BLEU_MAX_ORDER).items():
        matches[len(gram) - 1] += min(count, max_ref_counts[gram])
    c = len(hyp)
    log_p = 0.0
    for n in range(1, BLEU_MAX_ORDER + 1):
        possible = max(c - n + 1, 0)
        log_p += math.log((matches[n - 1] + 1) / (possible + 1))
    r = min(len(t) for t in ref_tokens)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p / BLEU_MAX_ORDER)


@lru_cache(maxsize=1)
def _rouge_scorer():
    """rouge-score's ROUGE-L scorer with the settings of ``evaluate``'s rouge (no stemmer)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(hypothesis: str, references: list[str]) -> float:
    """ROUGE-L F-measure in [0, 1], the best over the references (chapter 1).

    BLEUBERI's ``rouge`` reward is ``evaluate``'s rouge with all references, which calls
    rouge-score's ``score_multi``: the reference with the highest F-measure wins. rouge-score
    lower-cases and keeps only letters and digits. Empty hypotheses score 0.
    """
    refs = _check_references(references)
    if not _check_str("hypothesis", hypothesis).strip():
        return 0.0
    return float(_rouge_scorer().score_multi(refs, hypothesis)["rougeL"].fmeasure)


def bleu_rouge_f1(hypothesis: str, references: list[str]) -> float:
    """Harmonic mean ``2BR / (B + R)`` of :func:`bleu` and :func:`rouge_l` (0 when both are 0).

    BLEUBERI's ``bleu_rouge_f1`` option; the agreement table calls it BLEU-ROUGE-L (chapter 1).
    """
    b, r = bleu(hypothesis, references), rouge_l(hypothesis, references)
    return 2 * b * r / (b + r) if b + r > 0 else 0.0


TEXT_METRICS = {"bleu": bleu, "rouge_l": rouge_l, "bleu_rouge_f1": bleu_rouge_f1}


def answer_span(text: str) -> str:
    """What follows ``<answer>`` (up to ``</answer>`` when present), or the whole text.

    BLEUBERI's reward rule for reasoning-style outputs; the result is stripped.
    """
    if "<answer>" in _check_str("text", text):
        text = text.split("<answer>", 1)[1].split("</answer>", 1)[0]
    return text.strip()


def _is_missing(value) -> bool:
    """None or a float NaN (what pandas leaves in empty cells)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_metric(metric) -> str:
    if not isinstance(metric, str) or metric not in TEXT_METRICS:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(TEXT_METRICS)}")
    return metric


def text_reward(completion, references, metric: str = "bleu", *, answer_only: bool = False) -> float:
    """One completion's score against its references under ``metric`` (BLEUBERI's rule).

    The completion may be a string or a list of chat messages; with ``answer_only`` only the
    ``<answer>`` span is scored. Empty or NaN text scores 0, as in the released code.
    """
    _check_metric(metric)
    if isinstance(references, str):
        references = [references]
    references = _check_references(references)
    if _is_missing(completion):
        return 0.0
    text = completion_text(completion)
    text = answer_span(text) if answer_only else text.strip()
    if not text:
        return 0.0
    return TEXT_METRICS[metric](text, references)


def make_text_reward(metric: str = "bleu", *, answer_only: bool = False, column: str = "references"):
    """A TRL reward function ``f(completions, **columns) -> list[float]`` for ``metric``.

    It reads the references of each completion from the dataset column ``column`` (a list of
    strings per row; TRL repeats it for every completion of a prompt). Chapter 1 trains with
    ``make_text_reward("bleu")``, which is the BLEUBERI reward.
    """
    _check_metric(metric)
    _check_str("column", column, nonempty=True)

    def reward(completions, **kwargs) -> list[float]:
        completions = _check_texts("completions", completions)
        if column not in kwargs:
            raise ValueError(f"the dataset has no {column!r} column; columns passed: {sorted(kwargs)}")
        refs = _check_texts(column, kwargs[column])
        if len(refs) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(refs)} rows of {column!r}")
        return [text_reward(c, r, metric, answer_only=answer_only) for c, r in zip(completions, refs, strict=True)]

    reward.__name__ = f"{metric}_reward" + ("_answer" if answer_only else "")
    return reward


def bleu_reward(completions, references, *, answer_only: bool = False, **kwargs) -> list[float]:
    """BLEUBERI's reward in TRL's format: BLEU of each completion against its ``references``.

    Pass it straight to ``GRPOTrainer(reward_funcs=[bleu_reward])`` with a dataset that has a
    ``references`` column; for the ``<answer>`` rule use ``make_text_reward("bleu", answer_only=True)``.
    """
    return make_text_reward("bleu", answer_only=answer_only)(completions, references=references)
