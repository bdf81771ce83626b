"""Divergences and exponential tilting on discrete distributions, in log space.

The two building blocks that chapters 3, 4 and 5 share: ``kl(p, q)`` and ``tilt(p, r, lam)``.
Introduced in chapter 4 (the KL-constrained optimum is a tilt) and reused in chapter 3 (the
KL-regularised RL optimum is the tilt with ``lam = 1 / beta``) and chapter 5.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

# ------------------------------------------------------------------ shared argument checks
# Every theory module validates through these, so a bad argument always raises a TypeError
# (not a number) or a ValueError (out of range, NaN) whose message names it.

_NUMERIC_KINDS = "iuf"  # ints, unsigned ints, floats (bools and complex are refused)


def _as_real(x, name: str, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False, allow_inf: bool = False) -> float:
    """``x`` as a float: a real number (not a bool, not NaN), finite unless ``allow_inf``, in the range.

    The range is ``[low, high]``; ``low_open`` / ``high_open`` exclude the end.
    """
    if isinstance(x, (bool, np.bool_)) or np.ndim(x) != 0 or not isinstance(x, (int, float, np.number, np.ndarray)) \
            or np.asarray(x).dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}: {x!r:.80}")
    v = float(x)
    if np.isnan(v):
        raise ValueError(f"{name} must be a real number, got nan")
    if np.isinf(v) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {v!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        if high is None:
            accepted = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            accepted = f"{'<' if high_open else '<='} {high:g}"
        else:
            accepted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {accepted}, got {x!r}")
    return v


def _as_int(x, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``x`` as an int: an int, or a float with an integer value (not a bool), in ``[low, high]``."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be an integer, got {type(x).__name__}: {x!r:.80}")
    if isinstance(x, (float, np.floating)) and (not np.isfinite(x) or int(x) != x):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    if (low is not None and x < low) or (high is not None and x > high):
        accepted = f"in [{low}, {high}]" if low is not None and high is not None else \
            f">= {low}" if low is not None else f"<= {high}"
        raise ValueError(f"{name} must be an integer {accepted}, got {x!r}")
    return int(x)


def _as_array(x, name: str, *, ndim: int | None = 1, nonempty: bool = True, finite: bool = True,
              allow_neg_inf: bool = False) -> np.ndarray:
    """``x`` as a float array of numbers (no strings, None or bools): ``ndim``-D, non-empty, no NaN,
    and finite unless ``allow_neg_inf`` (then only ``-inf`` is allowed, e.g. log-probabilities)."""
    raw = np.asarray(x) if not isinstance(x, (str, bytes, dict)) and x is not None else None
    if raw is None or raw.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}: {x!r:.80}")
    a = raw.astype(float)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if nonempty and a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.any(np.isnan(a)):
        raise ValueError(f"{name} must not contain NaN, got {a}")
    if finite and (np.any(np.isposinf(a)) or (not allow_neg_inf and np.any(np.isneginf(a)))):
        what = "finite or -inf" if allow_neg_inf else "finite"
        raise ValueError(f"{name} must be {what}, got {a}")
    return a


def _as_distribution(p, name: str = "p") -> np.ndarray:
    """Validate ``p`` as a 1-D probability vector (non-negative, sums to 1).

    The tolerance on the sum scales with the input's precision: 1e-8 for float64, about
    ``size * eps`` for float32 or float16 inputs (a float32 vector cannot sum to 1 within 1e-8).
    """
    raw = np.asarray(p) if not isinstance(p, (str, bytes, dict)) and p is not None else None
    if raw is None or raw.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name} must be a 1-D array of probabilities, got {type(p).__name__}: {p!r:.80}")
    eps = np.finfo(raw.dtype).eps if raw.dtype.kind == "f" else np.finfo(float).eps
    p = raw.astype(float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {p}")
    total = p.sum()
    tol = max(1e-8, float(eps) * max(16, p.size))
    if abs(total - 1.0) > tol:
        raise ValueError(f"{name} must sum to 1 (within {tol:.2g}), sums to {total!r}")
    return p


def _checked(p, r, name_p: str = "p", name_r: str = "r") -> tuple[np.ndarray, np.ndarray]:
    """Validate ``p`` (a distribution) and ``r`` (finite rewards of the same shape)."""
    p = _as_distribution(p, name_p)
    r = _as_array(r, name_r, ndim=None, nonempty=False, finite=False)
    if r.shape != p.shape:
        raise ValueError(f"{name_r} must have {name_p}'s shape {p.shape}, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name_r} (rewards) must be finite, got {r}")
    return p, r


def _as_lam(lam, name: str = "lam") -> float:
    """A tilt parameter: a real number or ``+inf`` (the argmax limit); NaN and ``-inf`` are refused."""
    v = _as_real(lam, name, allow_inf=True)
    if v == -np.inf:
        raise ValueError(f"{name} must be a real number or +inf (the argmax limit), got -inf")
    return v


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
    lam = _as_lam(lam)
    if np.isinf(lam) and lam > 0:
        support = p > 0
        best = r[support].max()
        mask = support & (r == best)
        out = np.where(mask, p, 0.0)
        return out / out.sum()
    with np.errstate(divide="ignore"):
        logits = np.log(p) + lam * r
    return np.exp(logits - logsumexp(logits))
