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

import regex


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
# The rule of the released code (GAIR-NLP/LIMR openrlhf/cli/serve_rm.py, RuleBasedRMProxy,
# --mode rule --template_type qwen), step by step in limr_math_reward. One documented fix is
# available: wrap_dollars=True wraps both answers in $...$ before math_verify.parse (the paper's
# bare parsing reads (5,7) or \dfrac{11}{16} as nothing and 2\sqrt{3} as 2).
# ---------------------------------------------------------------------------------------------

LIMR_CORRECT, LIMR_WRONG, LIMR_FORMAT_ERROR = 1.0, -0.5, -1.0
# characters the released code counts as valid: ASCII letters, digits, whitespace, punctuation
# and the Unicode "Mathematical Operators" block U+2200-U+22FF; more than 30% others = garbled
_VALID_CHAR = re.compile(r"[a-zA-Z0-9\s\.,!?\"'\(\)\{\}\[\]_\-+=<>/@#$%^&*\\|:;~`\u2200-\u22FF]")
_REPEAT = re.compile(r"(.{5,}?)\1{4,}")  # a chunk of >= 5 characters repeated >= 5 times in a row
_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
_ASSISTANT_TURN = "<|im_end|>\n<|im_start|>assistant\n"  # where the released code cuts the response


def _braced(levels: int) -> str:
    """A regex for ``{...}`` holding at most ``levels`` more levels of braces (escaped ``\\{``
    and ``\\}`` count as plain characters), as the released boxed pattern nests them."""
    if levels == 0:
        return r"\{[^{}]*\}"
    return r"\{(?:[^{}]|\\\{|\\\}|" + _braced(levels - 1) + r")*\}"


# the released boxed pattern: \boxed{ + content (3 more brace levels at most) + }; findall's last
# match is the answer (the released group also holds the closing "}", which it then cuts off).
# It backtracks exponentially on some inputs (e.g. many "\{a"): the `regex` module's time limit
# stands in for the released server's 2-second limit, which scores -1.
_BOXED_RE = regex.compile(r"\\boxed\{((?:[^{}]|\\\{|\\\}|" + _braced(2) + r")*)\}", flags=regex.VERSION0)
BOXED_TIMEOUT_S = 2.0


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` the released LIMR reward finds, or None.

    Its regular expression, scanned left to right without overlaps: a ``\\boxed{`` inside a
    matched box is part of that box (``\\boxed{\\boxed{1}}`` gives ``\\boxed{1}``); content nests
    braces at most 3 levels deep (a deeper ``\\boxed{`` does not match at all); ``\\{`` and
    ``\\}`` may stand alone (``\\boxed{\\{1}`` gives ``\\{1``).
    Raises ``TimeoutError`` when the pattern runs past ``BOXED_TIMEOUT_S`` seconds.
    """
    matches = _BOXED_RE.findall(_check_str("text", text), timeout=BOXED_TIMEOUT_S)
    return matches[-1] if matches else None


def limr_response(text: str) -> str:
    """The response the released LIMR reward judges: after the last assistant turn marker, up to
    the first ``<|im_end|>`` or ``<|endoftext|>``, stripped."""
    text = _check_str("text", text).split(_ASSISTANT_TURN)[-1]
    return text.split(_STOP_TOKENS[0])[0].split(_STOP_TOKENS[1])[0].strip()


def limr_format_error(text: str, *, require_stop: bool = False) -> str | None:
    """Why the LIMR reward would give ``text`` -1 before comparing answers, or None if well formed.

    The released checks, in order: no ``<|im_end|>``/``<|endoftext|>`` (a truncated response;
    only with ``require_stop=True``, since TRL decodes completions without special tokens),
    then on :func:`limr_response`: no ``\\boxed`` or ``\\boxed`` 5 or more times; more than 30% of
    characters outside its whitelist (garbled); a chunk of >= 5 characters repeated >= 5 times;
    no ``\\boxed{...}`` its pattern matches.
    """
    text = _check_str("text", text)
    if require_stop and not any(t in text.split(_ASSISTANT_TURN)[-1] for t in _STOP_TOKENS):
        return "no stop token (truncated)"
    response = limr_response(text)
    n_boxed = response.count("\\boxed")
    if n_boxed == 0:
        return "no \\boxed{} answer"
    if n_boxed >= 5:
        return f"\\boxed appears {n_boxed} times (>= 5)"
    if len(_VALID_CHAR.sub("", response)) / len(response) > 0.3:
        return "garbled: more than 30% of characters outside the whitelist"
    if _REPEAT.search(response):
        return "repeated text: a chunk of >= 5 characters repeats >= 5 times in a row"
    try:
        pred = last_boxed(response)
    except TimeoutError:
        return f"the boxed pattern ran past {BOXED_TIMEOUT_S:g} s (the released server's time limit)"
    if pred is None:
        return "no \\boxed{} answer its pattern matches (unbalanced, or braces nested > 3 deep)"
    return None


def answers_match(gold: str, pred: str, *, wrap_dollars: bool = True) -> bool:
    """``math_verify.verify(parse(gold), parse(pred))``, both wrapped in ``$...$`` by default.

    Any exception of math-verify counts as "no match", as in the released ``math_equal2``.
    """
    from math_verify import parse, verify

    gold, pred = _check_str("gold", gold), _check_str("pred", pred)
    if wrap_dollars:
        gold, pred = f"${gold}$", f"${pred}$"
    try:
        return bool(verify(parse(gold), parse(pred)))
    except Exception:  # noqa: BLE001 - the released math_equal2 returns False on any error
        return False


def _check_answer(answer) -> str:
    """A gold answer as a non-empty string (ints are accepted and read as their digits)."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return str(answer)
    return _check_str("answer", answer, nonempty=True)


def limr_math_reward(completion: str, answer: str, *, wrap_dollars: bool = True,
                     require_stop: bool = False) -> float:
    """LIMR's rule reward for one completion: +1 correct, -0.5 wrong but well formed, -1 format error.

    ``limr_math_reward(text, gold, wrap_dollars=False, require_stop=True)`` is the released rule
    on a raw response (special tokens kept, as its server sees it): -1 without a stop token,
    then the format checks of :func:`limr_format_error`, then the last ``\\boxed{}`` against
    ``answer`` with math-verify on the bare strings (+1 / -0.5; a math-verify error is -0.5).
    The defaults suit texts decoded without special tokens (TRL's, our evaluations) and keep
    our fix: ``wrap_dollars=True`` parses ``$gold$`` and ``$pred$``, since bare parsing says
    ``2\\sqrt{5}`` "equals" ``2\\sqrt{3}`` and ``(5,7)`` never matches. Not reproduced: the
    server's 2-second wall-clock limit per response (-1 when it runs out).
    ``answer`` is a non-empty string (an int is read as its digits); None, NaN or an empty
    answer raise, since no completion could be scored against it.
    """
    answer = _check_answer(answer)
    text = completion_text(completion)
    if limr_format_error(text, require_stop=require_stop) is not None:
        return LIMR_FORMAT_ERROR
    pred = last_boxed(limr_response(text))  # quick now: the format check has matched it once
    return LIMR_CORRECT if answers_match(answer, pred, wrap_dollars=wrap_dollars) else LIMR_WRONG


def limr_reward(completions, answer, wrap_dollars: bool = True, *, penalise_truncated: bool = True,
                is_truncated=None, completion_ids=None, stop_token_ids=None, **kwargs) -> list[float]:
    """TRL reward function: :func:`limr_math_reward` of each completion against the ``answer``
    column (TRL passes dataset columns as keyword lists, one entry per completion).

    As in the paper, a completion that hit ``max_completion_length`` without an end-of-sequence
    token scores -1 (``penalise_truncated=False`` turns this off). Which ones did comes from
    ``is_truncated`` (one bool per completion; ``alignkit.training.build_grpo_trainer`` passes
    it, computed as TRL computes its ``clipped_ratio``), or from TRL's ``completion_ids`` and
    ``stop_token_ids`` (the tokenizer's EOS and pad ids; bind them with ``functools.partial`` for
    a plain ``trl.GRPOTrainer``). Called by a trainer that gives neither, it raises rather than
    silently score truncations; called on texts alone (no ``completion_ids``), nothing is known
    about truncation and the texts are scored as they are.
    """
    completions = _check_texts("completions", completions)
    answer = _check_texts("answer", answer)
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers; pass one answer per completion")
    truncated = [False] * len(completions)
    if penalise_truncated:
        if is_truncated is None and completion_ids is not None:
            if stop_token_ids is None:
                raise ValueError("limr_reward cannot tell which completions were truncated: build the trainer "
                                 "with alignkit.training.build_grpo_trainer (it passes is_truncated), bind "
                                 "stop_token_ids=[EOS and pad ids] with functools.partial, or pass "
                                 "penalise_truncated=False")
            stops = set(stop_token_ids)
            is_truncated = [len(ids) > 0 and ids[-1] not in stops for ids in completion_ids]
        if is_truncated is not None:
            truncated = [bool(t) for t in _check_texts("is_truncated", is_truncated)]
            if len(truncated) != len(completions):
                raise ValueError(f"got {len(completions)} completions but {len(truncated)} is_truncated flags")
    return [LIMR_FORMAT_ERROR if cut else limr_math_reward(c, a, wrap_dollars=wrap_dollars)
            for c, a, cut in zip(completions, answer, truncated, strict=True)]


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
    """Split ``text`` into tokens the way the BLEUBERI reward does (13a, case kept).

    No stripping first: 13a pads the line itself, and stripping would change a line ending in
    ``-\\n`` (13a joins such hyphenated line breaks).
    """
    return _tokenizer_13a()(_check_str("text", text)).split()


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

    BLEUBERI calls ``evaluate.load("bleu")`` with ``smooth=True``, which is the TF-NMT
    ``compute_bleu`` on 13a tokens; this is the same formula, with the same floating-point
    steps, on sacrebleu's 13a tokenizer (identical to ``evaluate``'s copy), so it runs offline:

    - tokens: 13a, case-sensitive; n-grams up to 4;
    - matches clipped by the *maximum* count of the n-gram over the references;
    - add-one smoothing on every order, unigrams included: ``p_n = (m_n + 1) / (c_n + 1)``;
    - brevity penalty against the *shortest* reference: ``BP = exp(1 - 1/ratio)``, ``ratio = c/r``,
      when ``ratio <= 1``;
    - a hypothesis with no tokens scores 0 (the released reward scores an empty answer 0 before
      calling BLEU; one made of nothing but ``<skipped>`` would divide by zero there).

    A reference with no 13a tokens raises ValueError (the released code divides by zero on it).
    It differs from ``sacrebleu.sentence_bleu`` (which smooths differently and picks the
    reference closest in length); ``tests/test_bleu.py`` shows where the two agree.
    """
    refs = _check_references(references)
    hyp = tokenize_13a(_check_str("hypothesis", hypothesis))
    if not hyp:
        return 0.0
    ref_tokens = [tokenize_13a(r) for r in refs]
    empty = [i for i, t in enumerate(ref_tokens) if not t]
    if empty:
        raise ValueError(f"reference {empty[0]} of {len(refs)} has no 13a tokens: {refs[empty[0]]!r:.80} "
                         "(BLEU's brevity penalty would divide by zero; drop such rows before scoring)")
    max_ref_counts: Counter = Counter()
    for toks in ref_tokens:
        max_ref_counts |= _ngram_counts(toks, BLEU_MAX_ORDER)  # | keeps the maximum count
    matches = [0] * BLEU_MAX_ORDER
    for gram, count in _ngram_counts(hyp, BLEU_MAX_ORDER).items():
        matches[len(gram) - 1] += min(count, max_ref_counts[gram])
    c = len(hyp)
    precisions = [(matches[n - 1] + 1.0) / (max(c - n + 1, 0) + 1.0) for n in range(1, BLEU_MAX_ORDER + 1)]
    geo_mean = math.exp(sum((1.0 / BLEU_MAX_ORDER) * math.log(p) for p in precisions))
    ratio = float(c) / min(len(t) for t in ref_tokens)
    bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp


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


# the released code's names (training/dataset.py get_reward_funcs); "rouge_l" is the same metric
TEXT_METRICS = {"bleu": bleu, "rouge": rouge_l, "rouge_l": rouge_l, "bleu_rouge_f1": bleu_rouge_f1}


def answer_span(text: str) -> str:
    """BLEUBERI's answer extraction (released ``extract_answer``), stripped.

    With both tags: the text between the first ``<answer>`` and the next ``</answer>`` (or the
    next ``<answer>``, whichever comes first); with only ``<answer>``: what follows it, up to a
    second ``<answer>``; with no ``<answer>`` (or only ``</answer>``): the whole text.
    """
    if "<answer>" not in _check_str("text", text):
        return text.strip()
    inner = text.split("<answer>")[1]  # up to the next <answer>, as the released split()[1]
    if "</answer>" in text:
        inner = inner.split("</answer>")[0]
    return inner.strip()


def _is_missing(value) -> bool:
    """None or a float (the released reward scores any float, e.g. pandas' NaN, 0)."""
    return value is None or isinstance(value, float)


def _check_metric(metric) -> str:
    if not isinstance(metric, str) or metric not in TEXT_METRICS:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(TEXT_METRICS)}")
    return metric


def _assistant_text(completion) -> str:
    """A completion's text: a string, or the content of its first assistant message (the
    released reward's rule for conversational completions; other shapes as :func:`completion_text`)."""
    if isinstance(completion, list) and completion and all(isinstance(m, dict) for m in completion):
        for message in completion:
            if message.get("role") == "assistant":
                return completion_text(message)
    return completion_text(completion)


def text_reward(completion, references, metric: str = "bleu", *, answer_only: bool = True) -> float:
    """One completion's score against its references under ``metric``: BLEUBERI's GRPO reward.

    As the released ``training/dataset.py`` (``bleu_reward_func`` and its ROUGE / BLEU-ROUGE
    siblings): a string, or the first assistant message of a conversation; None, a float (NaN)
    or blank text scores 0; the ``<answer>`` span (:func:`answer_span`; the whole stripped text
    when there is no ``<answer>``) is what gets scored, and an empty span scores 0.
    ``answer_only=False`` scores the whole stripped text instead: the released data-selection
    step (``create_training_data.py``) scores base-model answers that way.
    """
    _check_metric(metric)
    if isinstance(references, str):
        references = [references]
    references = _check_references(references)
    if _is_missing(completion):
        return 0.0
    text = _assistant_text(completion)
    text = answer_span(text) if answer_only else text.strip()
    if not text:
        return 0.0
    return TEXT_METRICS[metric](text, references)


def make_text_reward(metric: str = "bleu", *, answer_only: bool = True, column: str = "references"):
    """A TRL reward function ``f(completions, **columns) -> list[float]`` for ``metric``.

    By default it equals BLEUBERI's released GRPO reward (``bleu``, ``rouge`` or
    ``bleu_rouge_f1``): the ``<answer>`` span is scored when there is one, the whole text
    otherwise (see :func:`text_reward`). ``answer_only=False`` always scores the whole text
    (its name then ends in ``_full_text``, so TRL logs the two apart). The references of each
    completion come from the dataset column ``column`` (a list of strings per row; TRL repeats
    it for every completion of a prompt). Chapter 1 trains with ``make_text_reward("bleu")``.
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

    reward.__name__ = f"{metric}_reward" + ("" if answer_only else "_full_text")
    return reward


def bleu_reward(completions, references, *, answer_only: bool = True, **kwargs) -> list[float]:
    """BLEUBERI's reward in TRL's format: BLEU of each completion (its ``<answer>`` span when it
    has one) against its ``references``, as ``make_text_reward("bleu")``.

    Pass it straight to ``GRPOTrainer(reward_funcs=[bleu_reward])`` with a dataset that has a
    ``references`` column; ``answer_only=False`` scores the whole text.
    """
    return make_text_reward("bleu", answer_only=answer_only)(completions, references=references)
