"""Intervals for numbers measured over seeds or samples: the ledgers report these, never bare means.

Used by every chapter's claims ledger.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval ``(mean, lo, hi)`` over seeds; a single value gives (v, nan, nan)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value, got none")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def bootstrap_ci(values, statistic=np.mean, *, confidence: float = 0.95, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap ``(estimate, lo, hi)`` of ``statistic`` over the rows of ``values``."""
    x = np.asarray(values)
    if len(x) == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = np.array([statistic(x[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return float(statistic(x)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def fmt_ci(mean: float, lo: float = float("nan"), hi: float = float("nan"), digits: int = 3) -> str:
    """``'0.412 [0.371, 0.455]'``, or just the mean when there is no interval."""
    if np.isnan(lo) or np.isnan(hi):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"
