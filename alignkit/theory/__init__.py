"""Exact math on discrete distributions: tilting, best-of-n, asymptotics, the Bayesian view, trilemma.

Public API re-exported here so that ``from alignkit.theory import kl, tilt`` works.
"""

from alignkit.theory.divergence import kl, tilt

__all__ = ["kl", "tilt"]
