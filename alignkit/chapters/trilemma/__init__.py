"""Chapter 5: the RLHF trilemma (arXiv 2511.19504), a position paper without experiments.

* :mod:`~alignkit.chapters.trilemma.simulation`: seeded Monte Carlo of its three properties;
* :mod:`~alignkit.chapters.trilemma.style_pairs`: the two-group preference data of its reward-model run.

The exact bounds are shared: :mod:`alignkit.theory.trilemma` and :mod:`alignkit.theory.preferences`.
"""
