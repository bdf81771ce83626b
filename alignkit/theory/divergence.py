"""Divergences and exponential tilting on discrete distributions, in log space.

The two building blocks that chapters 3, 4 and 5 share: ``kl(p, q)`` and ``tilt(p, r, lam)``.
Introduced in chapter 4 (the KL-constrained optimum is a tilt) and reused in chapter 3 (the
KL-regularised RL optimum is the tilt with ``lam = 1 / beta``) and chapter 5.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _as_distribution(p, name: str = "p") -> np.ndarray:
    """Validate ``p`` as a 1-D probability vector (non-negative, sums to 1 within 1e-8)."""
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {p}")
    total = p.sum()
    if abs(total - 1.0) > 1e-8:
        raise ValueError(f"{name} must sum to 1, sums to {total!r}")
    return p


def _checked(p, r) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``p`` (a distribution) and ``r`` (finite rewards of the same shape)."""
    p = _as_distribution(p, "p")
    r = np.asarray(r, dtype=float)
    if r.shape != p.shape:
        raise ValueError(f"r must have p's shape {p.shape}, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"rewards must be finite, got {r}")
    return p, r


def kl(p, q) -> float:
    """KL(p || q) in nats. Terms with p = 0 contribute 0; ``inf`` where q misses p's support."""
    p = _as_distribution(p, "p")
    q = _as_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    support = p > 0
    if np.any(q[support] == 0):
        return float("inf")
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))


def tilt(p, r, lam: float) -> np.ndarray:
    """The tilted distribution proportional to ``p * exp(lam * r)``, computed in log space.

    ``lam = inf`` gives ``p`` restricted to the argmax set of ``r`` (the limit of the tilt).
    """
    p, r = _checked(p, r)
    if np.isinf(lam) and lam > 0:
        support = p > 0
        best = r[support].max()
        mask = support & (r == best)
        out = np.where(mask, p, 0.0)
        return out / out.sum()
    with np.errstate(divide="ignore"):
        logits = np.log(p) + lam * r
    return np.exp(logits - logsumexp(logits))
