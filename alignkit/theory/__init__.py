"""Exact math on discrete distributions: tilting, best-of-n, asymptotics, the Bayesian view, trilemma.

Public API re-exported here so that ``from alignkit.theory import kl, tilt`` works.

- ``divergence``: ``kl``, ``tilt`` (chapters 3, 4, 5).
- ``optimum``: the KL-constrained optimum and the tilted family's CGF (chapter 4).
- ``best_of_n``: exact best-of-n in log space, its KL, the KL bound, win rate, KL estimator (chapter 4).
- ``memoryless``: sequence-level asymptotics for memoryless LMs with additive rewards (chapter 4).
- ``bayes``: the KL-RL posterior, log Z, the ELBO and rejection sampling (chapter 3).
- ``trilemma``: sample-complexity calculators for representativeness and coverage (chapter 5).
- ``preferences``: Bradley-Terry fitting, preference collapse, robust aggregators (chapter 5).

Chapters 3 and 5 import their modules by name: ``from alignkit.theory import bayes``.
"""

from alignkit.theory import bayes, preferences, trilemma
from alignkit.theory.best_of_n import (
    best_of_n_distribution,
    best_of_n_expected_reward,
    best_of_n_from_pool,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_kl_estimator,
    best_of_n_level_logpmf,
    best_of_n_win_rate,
    reward_levels,
    sample_best_of_n,
)
from alignkit.theory.divergence import kl, tilt
from alignkit.theory.memoryless import (
    best_of_n_vs_tilt,
    rate_function,
    renyi_cross_entropy,
    sequence_reward_logpmf,
    sequence_scaled_cgf,
    tail_exponent,
    tilt_for_mean,
)
from alignkit.theory.optimum import (
    cgf,
    kl_constrained_optimum,
    kl_to_tilt_identity,
    max_kl,
    tilt_kl,
    tilted_mean,
    tilted_variance,
)

__all__ = [
    "bayes", "preferences", "trilemma",
    "kl", "tilt",
    "cgf", "tilted_mean", "tilted_variance", "tilt_kl", "max_kl", "kl_constrained_optimum",
    "kl_to_tilt_identity",
    "reward_levels", "best_of_n_level_logpmf", "best_of_n_distribution", "best_of_n_kl",
    "best_of_n_kl_bound", "best_of_n_win_rate", "best_of_n_expected_reward", "best_of_n_kl_estimator",
    "sample_best_of_n", "best_of_n_from_pool",
    "sequence_reward_logpmf", "rate_function", "tilt_for_mean", "renyi_cross_entropy",
    "sequence_scaled_cgf", "tail_exponent", "best_of_n_vs_tilt",
]
