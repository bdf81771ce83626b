"""Chapter 1: BLEUBERI, BLEU as a GRPO reward for instruction following (arXiv 2505.11080).

* :mod:`~alignkit.chapters.bleuberi.config`: the paper's GRPO fields and the sizes per scale;
* :mod:`~alignkit.chapters.bleuberi.agreement`: claim 1, metric-judge agreement on labelled pairs;
* :mod:`~alignkit.chapters.bleuberi.baselines`: the reward model of GRPO-RM, SFT's rows;
* :mod:`~alignkit.chapters.bleuberi.evaluation`: held-out pass rate, BLEU and length;
* :mod:`~alignkit.chapters.bleuberi.experiment`: the whole experiment, resumable, from the command line;
* :mod:`~alignkit.chapters.bleuberi.hard_subset`: ``python -m alignkit select``, the hard subset a recipe trains on;
* :mod:`~alignkit.chapters.bleuberi.task`: the recipe task ``bleuberi`` and its prompt pool.

The reward itself is shared: ``alignkit.rewards.bleu`` / ``make_text_reward("bleu")`` (the released
GRPO reward: BLEU of the ``<answer>`` span when there is one, else of the whole answer).
"""
