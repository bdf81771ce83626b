"""Chapter 1 (BLEUBERI): held-out evaluation of one model's greedy answers.

Which prompts (:func:`evaluation_rows`: the held-out split, topped up with training prompts no run
sees) and what is measured on them (:func:`evaluate_answers`: the strict verifier pass rate, every
constraint of the instruction met, IFEval's prompt-level strict accuracy; the share of constraints
met; BLEU against the references; the length).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignkit.data import read_instruction_rows
from alignkit.rewards import bleu, word_count
from alignkit.verifier import check_all, verifier_score


def evaluation_rows(n_eval: int, n_unseen: int = 0, *, pool: int = 0, n_agree: int = 0) -> list[dict]:
    """The prompts every model of chapter 1 is evaluated on, the same for all methods and seeds.

    The first ``n_eval`` rows of the held-out split, then ``n_unseen`` training-split rows
    ``pool .. pool + n_unseen``: past the ``pool`` that hard selection draws from (so no run trains
    on them) and before the last ``n_agree`` (the agreement study's prompts). The offline held-out
    split has 150 prompts, too few to decide GRPO-BLEU vs GRPO-RM within 5 points; the unused part
    of the training split comes from the same generator (same topics and constraint kinds, new
    combinations), so it is held out in every sense that matters here. Each row keeps its ``id``
    (``heldout-...`` or ``train-...``), so the two parts can be scored apart.
    """
    for name, value in (("n_eval", n_eval), ("n_unseen", n_unseen), ("pool", pool), ("n_agree", n_agree)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    heldout, train = read_instruction_rows("heldout"), read_instruction_rows("train")
    if n_eval > len(heldout):
        raise ValueError(f"n_eval {n_eval} exceeds the {len(heldout)} held-out prompts")
    if pool + n_unseen + n_agree > len(train):
        raise ValueError(f"pool {pool} + n_unseen {n_unseen} + n_agree {n_agree} exceeds the "
                         f"{len(train)} training prompts")
    return heldout[:n_eval] + train[pool:pool + n_unseen]


def evaluate_answers(answers: Sequence[str], rows: Sequence[dict]) -> dict:
    """Held-out metrics of one model's answers: strict verifier pass rate, share of constraints
    met, mean BLEU against all references, mean length in words; plus the per-prompt values."""
    if len(answers) != len(rows):
        raise ValueError(f"{len(answers)} answers but {len(rows)} rows")
    passed = [float(all(check_all(a, r["constraints"]))) for a, r in zip(answers, rows, strict=True)]
    partial = [verifier_score(a, r["constraints"]) for a, r in zip(answers, rows, strict=True)]
    bleus = [bleu(a, r["references"]) if a.strip() else 0.0 for a, r in zip(answers, rows, strict=True)]
    words = [word_count(a) for a in answers]
    return {"pass_rate": float(np.mean(passed)), "constraint_rate": float(np.mean(partial)),
            "bleu": float(np.mean(bleus)), "length_words": float(np.mean(words)),
            "per_prompt": {"pass": passed, "partial": partial, "bleu": bleus, "words": words}}
