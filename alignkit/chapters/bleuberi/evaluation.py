"""Chapter 1 (BLEUBERI): held-out evaluation of one model's greedy answers.

The strict verifier pass rate (every constraint of the instruction met, IFEval's prompt-level
strict accuracy), the share of constraints met, BLEU against the references and the length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignkit.rewards import bleu, word_count
from alignkit.verifier import check_all, verifier_score


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
