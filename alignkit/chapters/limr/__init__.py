"""Chapter 2: LIMR, learning-impact sample selection for RL (arXiv 2502.11886).

* :mod:`~alignkit.chapters.limr.config`: the paper's fields and the sizes per scale;
* :mod:`~alignkit.chapters.limr.toy`: the whole pipeline on the toy arithmetic transformer, seeded;
* :mod:`~alignkit.chapters.limr.lm`: the real-LM track (TRL GRPO on word problems, LIM scores);
* :mod:`~alignkit.chapters.limr.results`: load a result, or run it when it is missing;
* :mod:`~alignkit.chapters.limr.analysis`: read the toy's results (paired differences, curves).

LIM itself is shared (``alignkit.selection.lim_scores``), as are the LIMR reward
(``alignkit.rewards.limr_math_reward``) and the trajectory recorder (``alignkit.trajectories``).
"""
