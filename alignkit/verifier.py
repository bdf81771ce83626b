"""A programmatic instruction-following verifier in the style of IFEval (chapter 1).

Chapter 1 needs a judge that does not look at the references: BLEU rewards outputs that resemble
the references, and the verifier checks whether an output actually follows the instruction, so
many different outputs can be right. Each constraint is a small dict with one uniform schema
(so a ``datasets.Dataset`` column of them stays one Arrow type)::

    {"kind": "start_with", "text": "Sure!", "n": 0}

``kind`` is one of :data:`KINDS`; ``text`` and ``n`` are its arguments ("" and 0 when unused).
:func:`describe` turns a constraint into the sentence the prompt shows, :func:`check` tests one
output against one constraint, and :func:`verifier_reward` is a TRL reward function reading a
``constraints`` column. Start/end phrases and words are matched case-insensitively, so they do
not conflict with the lowercase and uppercase constraints.
"""

from __future__ import annotations

import re

from alignkit.rewards import _check_str, _check_texts, completion_text, word_count

BULLET = re.compile(r"^\s*[-*]\s+\S", re.MULTILINE)

# kind -> (the sentence shown in the prompt, which arguments it uses)
KINDS: dict[str, tuple[str, str]] = {
    "max_words": ("Answer in at most {n} words.", "n"),
    "min_words": ("Answer in at least {n} words.", "n"),
    "include_word": ("Include the word '{text}'.", "text"),
    "exclude_word": ("Do not use the word '{text}'.", "text"),
    "start_with": ("Start your answer with '{text}'.", "text"),
    "end_with": ("End your answer with the exact phrase '{text}'.", "text"),
    "lowercase": ("Write your whole answer in lowercase letters.", ""),
    "uppercase": ("Write your whole answer in capital letters.", ""),
    "bullets": ("Use exactly {n} bullet points, each starting with '- '.", "n"),
    "no_commas": ("Do not use any commas.", ""),
}


def constraint(kind: str, text: str = "", n: int = 0) -> dict:
    """A constraint dict ``{"kind", "text", "n"}``, checked: unknown kinds raise ValueError.

    ``text`` must be a string and ``n`` an int (whether or not the kind uses them).
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"unknown constraint kind {kind!r}; accepted: {', '.join(KINDS)}")
    if not isinstance(text, str):
        raise TypeError(f"constraint {kind!r}: text must be a string, got {type(text).__name__}: {text!r:.80}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"constraint {kind!r}: n must be an int, got {type(n).__name__}: {n!r:.80}")
    uses = KINDS[kind][1]
    if uses == "n" and n < 1:
        raise ValueError(f"constraint {kind!r} needs n >= 1, got {n!r}")
    if uses == "text" and not text.strip():
        raise ValueError(f"constraint {kind!r} needs a non-empty text, got {text!r}")
    return {"kind": kind, "text": str(text), "n": int(n)}


def _check_constraint(c, name: str = "c") -> dict:
    """``c`` re-checked through :func:`constraint` (a dict with a known ``kind``), else an error naming ``name``."""
    if not isinstance(c, dict) or "kind" not in c:
        raise TypeError(f"{name} must be a constraint dict {{'kind', 'text', 'n'}}, got "
                        f"{type(c).__name__}: {c!r:.80}")
    try:
        return constraint(c["kind"], c.get("text", ""), c.get("n", 0))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name}: {err}") from None


def _check_constraints(constraints, name: str = "constraints") -> list[dict]:
    """A non-empty list of constraint dicts (one instruction's constraints)."""
    if isinstance(constraints, dict):
        raise TypeError(f"{name} must be a list of constraint dicts, got one dict; wrap it: [constraint]")
    items = _check_texts(name, constraints)
    if not items:
        raise ValueError(f"{name} is empty; an instruction needs at least one constraint")
    return [_check_constraint(c, f"{name}[{i}]") for i, c in enumerate(items)]


def describe(c: dict) -> str:
    """The instruction sentence for constraint ``c``, e.g. "Answer in at most 30 words."."""
    c = _check_constraint(c)
    return KINDS[c["kind"]][0].format(text=c["text"], n=c["n"])


def _has_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word, ignoring case."""
    return re.search(rf"(?<![\w']){re.escape(word)}(?![\w'])", text, re.IGNORECASE) is not None


def check(text: str, c: dict) -> bool:
    """Whether ``text`` satisfies the constraint ``c`` (the references are never consulted)."""
    c = _check_constraint(c)
    kind, arg, n = c["kind"], c["text"], c["n"]
    body = _check_str("text", text).strip()
    if kind == "max_words":
        return 0 < word_count(body) <= n
    if kind == "min_words":
        return word_count(body) >= n
    if kind == "include_word":
        return _has_word(body, arg)
    if kind == "exclude_word":
        return bool(body) and not _has_word(body, arg)
    if kind == "start_with":
        return body.lower().startswith(arg.strip().lower())
    if kind == "end_with":
        return body.lower().endswith(arg.strip().lower())
    if kind == "lowercase":
        return any(ch.isalpha() for ch in body) and body == body.lower()
    if kind == "uppercase":
        return any(ch.isalpha() for ch in body) and body == body.upper()
    if kind == "bullets":
        return len(BULLET.findall(body)) == n
    if kind == "no_commas":
        return bool(body) and "," not in body
    raise ValueError(f"unknown constraint kind {kind!r}; accepted: {', '.join(KINDS)}")


def check_all(text: str, constraints: list[dict]) -> list[bool]:
    """One bool per constraint: which of them ``text`` satisfies."""
    return [check(text, c) for c in _check_constraints(constraints)]


def passes(text: str, constraints: list[dict]) -> bool:
    """True when ``text`` satisfies every constraint (IFEval's strict prompt-level accuracy)."""
    return all(check_all(text, constraints))


def verifier_score(text: str, constraints: list[dict]) -> float:
    """Fraction of the constraints ``text`` satisfies (IFEval's loose, instruction-level view).

    Chapter 1 labels response pairs with it (the response meeting more constraints wins).
    """
    ok = check_all(text, constraints)
    return sum(ok) / len(ok)


def verifier_reward(completions, constraints, *, partial: bool = False, **kwargs) -> list[float]:
    """TRL reward function: 1.0 when a completion follows all its ``constraints`` column, else 0.0.

    With ``partial=True`` the fraction of constraints satisfied instead (IFEval's loose
    instruction-level view). Chapter 1 uses it as the judge that does not see the references.
    """
    completions, constraints = _check_texts("completions", completions), _check_texts("constraints", constraints)
    if len(constraints) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(constraints)} rows of constraints")
    scores = []
    for comp, cons in zip(completions, constraints, strict=True):
        text = completion_text(comp)
        scores.append(verifier_score(text, cons) if partial else float(passes(text, cons)))
    return scores


def pass_rate(texts: list[str], constraints: list[list[dict]]) -> float:
    """Fraction of ``texts`` that follow all their constraints (one list per text)."""
    texts = _check_texts("texts", texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError(f"texts must be a list of strings, got {texts!r:.80}")
    if not texts:
        raise ValueError("texts is empty")
    return sum(verifier_reward(texts, constraints)) / len(texts)
