"""Chapter 0 (start here): the toy task of its end-to-end GRPO run, also the recipe task ``brevity``."""

from __future__ import annotations

from alignkit.data import prompt_rows

SUBJECTS = ["cats", "rain", "trains", "coffee", "mountains", "chess", "bees", "glass", "clouds",
            "maps", "salt", "owls", "bridges", "paper", "snow", "clocks", "rivers", "bread",
            "violins", "deserts", "lanterns", "ferns", "harbours", "kites"]


def brevity_task(n_train: int = 64, seed: int = 0, target_words: int = 10):
    """Chapter 0's toy task: 'Tell me about X.' prompts, rewarded for replies of ~``target_words``."""
    import random
    from functools import partial

    from datasets import Dataset

    from alignkit.rewards import brevity_reward

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    rng = random.Random(seed)
    rows = prompt_rows([f"Tell me about {rng.choice(SUBJECTS)}." for _ in range(n_train)])
    reward = partial(brevity_reward, target_words=target_words)
    reward.__name__ = "brevity_reward"
    return Dataset.from_list(rows), [reward]
