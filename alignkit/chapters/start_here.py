"""Chapter 0 (start here): the toy task of its end-to-end GRPO run, also the recipe task ``brevity``."""

from __future__ import annotations

from alignkit.data import prompt_rows
from alignkit.ledger import Claim

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


# ---------------------------------------------------------------------------------------------
# The chapter's pre-registered claims: the workbook's own claims about the bundled model on a
# laptop CPU (measured when the workbook was designed), and what the GRPO demo must show.
# ---------------------------------------------------------------------------------------------

_DESIGN = "derived here (measured on a 2-core CPU when the workbook was designed)"
CLAIMS = [
    Claim("load", "After the one-off conversion, the bundled model loads from the cache in about 0.1 s",
          "empirical", source=_DESIGN, paper="0.1 s (model + tokenizer)",
          statistic="median seconds to load model + tokenizer from the cache, 5 loads",
          hypothesis="less", margin=0.2, margin_reason="'about 0.1 s': within a factor of 2"),
    Claim("throughput", "Batched generation (batch 16) of the bundled model runs at about 140 tokens/s "
          "on 2 CPU cores", "empirical", source=_DESIGN, paper="about 140 tokens/s",
          statistic="median new tokens per second over 5 timed batches of 16",
          hypothesis="greater", margin=112.0, margin_reason="'about 140': at least 80% of it"),
    Claim("4bit-kl", "In 4-bit NF4 (bitsandbytes, on CPU) the model still answers like the full one",
          "empirical", source="QLoRA (Dettmers et al. 2023, arXiv 2305.14314), section 3: NF4 keeps "
          "16-bit quality", paper="no number for this model",
          statistic="mean KL(full || 4-bit) of the next-token distributions, nats per token",
          hypothesis="less", margin=0.5,
          margin_reason="below half a nat per token the greedy replies stay fluent and on topic"),
    Claim("grpo-step", "A GRPO step with LoRA on the bundled model takes 10-25 s on 2 CPU cores",
          "empirical", source=_DESIGN, paper="10-25 s a step (8 x 32 tokens, 4-bit)",
          statistic="mean seconds per GRPO step (TRL's step_time)", hypothesis="less", margin=25.0,
          margin_reason="the upper end of the design's range"),
    Claim("grpo-reward", "GRPO raises the reward on prompts it did not train on", "empirical",
          source="Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300), section 4: GRPO", paper="no number "
          "for this toy", statistic="mean brevity reward of sampled replies, trained minus base "
          "(12 held-out prompts x 4 samples, paired by prompt)", hypothesis="greater", margin=0.0,
          margin_reason="direction only", bounds=(-1.0, 1.0)),
    Claim("hack", "The word-count reward is gamed: the trained replies still run to the token cap",
          "empirical", source="derived here (a reward that counts words does not count the other "
          "tokens; reward hacking, Skalse et al. 2022, arXiv 2209.13085)", paper="no number",
          statistic="share of the trained model's held-out replies that stop only at the token cap",
          hypothesis="greater", margin=0.5,
          margin_reason="most replies padded to the cap is the hack; fewer than half is not",
          bounds=(0.0, 1.0)),
]
