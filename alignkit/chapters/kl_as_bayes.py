"""Chapter 3 (RL with KL penalties is better viewed as Bayesian inference): its real-LM task.

The exact math of the chapter lives in :mod:`alignkit.theory.bayes` and the toy policies in
:mod:`alignkit.toy` / :mod:`alignkit.toy_rl`; the diversity metrics in :mod:`alignkit.diversity`.
What only this chapter needs is the GRPO task of its real-LM experiment (beta = 0 against beta > 0
on the bundled model), also the recipe task ``keyword``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignkit.data import prompt_rows
from alignkit.diversity import keyword_reward

PARIS_TOPICS = ("the Eiffel Tower", "the Louvre", "Notre-Dame cathedral", "the river Seine",
                "the Arc de Triomphe", "Montmartre", "the Champs-Elysees", "the Musee d'Orsay")


def keyword_task(n_train: int = 64, seed: int = 0, keyword: str = "Paris",
                 topics: Sequence[str] = PARIS_TOPICS):
    """Chapter 3's GRPO task: one-sentence prompts about Paris landmarks, reward = mentions ``keyword``.

    The prompts never name the keyword; the base model mentions "Paris" in about a quarter of its
    answers, so GRPO has signal from the first step. The recipe task ``keyword`` (see ``alignkit.chapters.index``).
    """
    import random

    from datasets import Dataset

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if not topics:
        raise ValueError("topics must list at least one topic")
    rng = random.Random(seed)
    rows = prompt_rows([f"Write one sentence about {rng.choice(topics)}." for _ in range(n_train)])
    return Dataset.from_list(rows), [keyword_reward(keyword)]

