"""Memoryless language models with additive rewards: exact sequence-level asymptotics.

A length-``m`` sequence has i.i.d. tokens from ``p`` and reward ``r(y) = sum_i r(y_i)``. Within a
total-reward level, ``p``, best-of-N and every tilt are proportional to ``p``, so everything reduces
to the distribution of the total reward: ``m * |range(r)| + 1`` levels instead of ``K^m`` sequences.

That distribution is the ``m``-fold convolution of the per-token reward distribution. A plain FFT
loses the far tails (absolute error ~1e-16), which best-of-N with ``N = e^{m delta}`` needs. The
fix is the same exponential tilt as the KL-optimal policy: the ``m``-fold convolution of a tilted
kernel is the tilted distribution, whose bulk sits wherever we choose; un-tilting gives ``log p(k)``
to near machine relative precision around that point. A ladder of tilts covers every level.

Chapter 4 introduces it (Yang et al. 2024, "Asymptotics of Language Model Alignment", arXiv 2404.01730).
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft
from scipy.optimize import brentq
from scipy.special import logsumexp

from alignkit.theory.best_of_n import best_of_n_kl_bound, best_of_n_level_logpmf, level_kl
from alignkit.theory.divergence import _as_array, _as_distribution, _as_int, _as_real, _checked
from alignkit.theory.optimum import cgf, kl_constrained_optimum, max_kl, tilted_mean

# ---------------------------------------------------------------- the per-token reward kernel


def _token_kernel(p, r) -> tuple[float, int, np.ndarray]:
    """``(r_min, step, log_kernel)``: the per-token reward law on the lattice ``r_min + step * j``.

    Rewards must be integers (scale them first); a common factor of the offsets becomes ``step``.
    """
    p, r = _checked(p, r)
    support = p > 0
    if np.any(np.abs(r[support] - np.round(r[support])) > 1e-9):
        raise ValueError(f"memoryless rewards must be integers (rescale them), got {r[support]}")
    ri = np.round(r[support]).astype(np.int64)
    r_min = int(ri.min())
    offsets = ri - r_min
    step = 0
    for o in offsets:
        step = gcd(step, int(o))
    step = max(step, 1)
    kernel = np.bincount(offsets // step, weights=p[support])
    with np.errstate(divide="ignore"):
        return float(r_min), step, np.log(kernel)


def _kernel_moments(log_k: np.ndarray, lam) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the offset ``j`` under the kernel tilted by ``exp(lam * j)`` (vectorised)."""
    j = np.arange(log_k.size)
    w = log_k[None, :] + np.reshape(lam, (-1, 1)) * j[None, :]
    t = np.exp(w - logsumexp(w, axis=1, keepdims=True))
    mean = t @ j
    return mean, t @ (j**2) - mean**2


def _kernel_lambda_for_mean(log_k: np.ndarray, x: float) -> float:
    """The tilt ``lam`` whose kernel mean is ``x`` (strictly inside the kernel's range)."""
    def gap(t: float) -> float:
        return float(_kernel_moments(log_k, t)[0][0]) - x

    lo, hi = -1.0, 1.0
    while gap(lo) > 0:
        lo *= 2.0
    while gap(hi) < 0:
        hi *= 2.0
    return brentq(gap, lo, hi, xtol=1e-12)


def _tilt_ladder(log_k: np.ndarray, m: int) -> np.ndarray:
    """Tilts whose ``m``-token means step through every level, about one tilted s.d. (>= 1 level) apart.

    A dense grid of tilts between the ones centred on level 0.5 and level ``top - 0.5`` is scanned
    in one vectorised pass, and a tilt is kept each time the mean has moved by 1.5 s.d.
    """
    top = m * (log_k.size - 1)
    lams = np.linspace(_kernel_lambda_for_mean(log_k, 0.5 / m),
                       _kernel_lambda_for_mean(log_k, (top - 0.5) / m), 20_001)
    mean, var = _kernel_moments(log_k, lams)
    mean, sd = m * mean, np.sqrt(m * np.maximum(var, 0.0))
    keep, next_level = [], -np.inf
    for i in range(lams.size):
        if mean[i] >= next_level or i == lams.size - 1:
            keep.append(lams[i])
            next_level = mean[i] + max(1.0, 1.5 * sd[i])
    return np.array(keep)


def _logpmf_fft(log_k: np.ndarray, m: int) -> np.ndarray:
    """Log-pmf of the sum of ``m`` offsets by tilted FFTs; each level keeps its most accurate tilt."""
    size = m * (log_k.size - 1) + 1
    nfft = next_fast_len(size, real=True)
    j, k = np.arange(log_k.size), np.arange(size)
    best_tilted = np.full(size, -np.inf)
    out = np.full(size, -np.inf)
    for lam in _tilt_ladder(log_k, m):
        w = log_k + lam * j
        log_z = logsumexp(w)
        tilted = irfft(rfft(np.exp(w - log_z), nfft) ** m, nfft)[:size]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_tilted = np.log(tilted)
        better = log_tilted > best_tilted
        best_tilted = np.where(better, log_tilted, best_tilted)
        out = np.where(better, log_tilted - lam * k + m * log_z, out)
    # levels whose best tilted probability is FFT noise are unreachable (exact zeros)
    out[~(best_tilted > np.log(1e-12))] = -np.inf
    return out - logsumexp(out)


def _logpmf_direct(log_k: np.ndarray, m: int) -> np.ndarray:
    """Log-pmf of the sum of ``m`` offsets by adding one token at a time in log space (O(m^2))."""
    out = np.array([0.0])
    for _ in range(m):
        new = np.full(out.size + log_k.size - 1, -np.inf)
        for jj, lk in enumerate(log_k):
            if np.isfinite(lk):
                new[jj:jj + out.size] = np.logaddexp(new[jj:jj + out.size], out + lk)
        out = new
    return out


def _check_m(m) -> int:
    try:
        return _as_int(m, "m (the sequence length)", low=1)
    except ValueError:
        raise ValueError(f"sequence length m must be an integer >= 1, got {m!r}") from None


def sequence_reward_logpmf(p, r, m: int, method: str = "fft") -> tuple[np.ndarray, np.ndarray]:
    """Levels and log-probabilities of the total reward of ``m`` i.i.d. tokens from ``p``.

    ``method="fft"`` (tilted FFTs, ~O(sqrt(m) m log m), fine for m = 10^5) or ``"direct"``
    (exact log-space convolution, O(m^2), a reference for small m). Rewards must be integers.
    """
    m = _check_m(m)
    if method not in ("fft", "direct"):
        raise ValueError(f"method must be 'fft' or 'direct', got {method!r}")
    r_min, step, log_k = _token_kernel(p, r)
    if log_k.size == 1:
        return np.array([m * r_min]), np.array([0.0])
    if method == "fft":
        logpmf = _logpmf_fft(log_k, m)
    elif method == "direct":
        logpmf = _logpmf_direct(log_k, m)
    else:
        raise ValueError(f"method must be 'fft' or 'direct', got {method!r}")
    return m * r_min + step * np.arange(logpmf.size, dtype=float), logpmf


# ------------------------------------------------------------- cumulants, rate, Renyi reading


def rate_function(p, r, x, lam: float = 0.0):
    """The large-deviation rate ``I_lam(x) = sup_t {t x - [Lambda(lam + t) - Lambda(lam)]}``.

    The Legendre transform of the per-token CGF, for the mean reward per token of a sequence from
    the tilt ``phi_lam`` (``lam = 0``: from ``p``). ``inf`` outside ``[min r, max r]``. Vectorised.
    """
    p, r = _checked(p, r)
    lam = _as_real(lam, "lam")
    xs = np.atleast_1d(_as_array(x, "x", ndim=None, finite=False))
    support = p > 0
    lo, hi = r[support].min(), r[support].max()
    base = cgf(p, r, lam)
    out = np.empty_like(xs)
    for i, xi in enumerate(xs):
        if xi < lo or xi > hi:
            out[i] = np.inf
        elif xi == hi or xi == lo:  # sup is the limit t -> +-inf: -log p(extreme) - lam x + Lambda(lam)
            out[i] = -np.log(p[support & (r == xi)].sum()) - lam * xi + base
        else:
            t = tilt_for_mean(p, r, xi) - lam
            out[i] = t * xi - cgf(p, r, lam + t) + base
    return float(out[0]) if np.ndim(x) == 0 else out


def tilt_for_mean(p, r, x: float) -> float:
    """The ``lam`` with ``Lambda'(lam) = E_{phi_lam} r = x``, for ``x`` strictly inside the range of ``r``."""
    p, r = _checked(p, r)
    x = _as_real(x, "x")
    support = p > 0
    lo, hi = r[support].min(), r[support].max()
    if not lo < x < hi:
        raise ValueError(f"x (the mean reward, {x!r}) must lie strictly between min r = {lo} and max r = {hi}")
    a, b = -1.0, 1.0
    while tilted_mean(p, r, a) > x:
        a *= 2.0
    while tilted_mean(p, r, b) < x:
        b *= 2.0
    return brentq(lambda t: tilted_mean(p, r, t) - x, a, b, xtol=1e-14, rtol=1e-14)


def renyi_cross_entropy(p, q, alpha: float) -> float:
    """``H_alpha(p; q) = log(sum_y p(y) q(y)^(alpha - 1)) / (1 - alpha)``; ``alpha = 1`` is the cross entropy.

    One reading of the "proper Renyi cross entropy" of Yang et al. 2024 (abstract): the identity is
    derived here and checked numerically; that it is the paper's statement is unverified.
    """
    p, q = _as_distribution(p, "p"), _as_distribution(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    alpha = _as_real(alpha, "alpha", low=0, low_open=True)
    on = p > 0
    if np.any(q[on] == 0) and alpha <= 1:
        return float("inf")
    q_on = q[on]
    if alpha == 1:
        return float(-np.sum(p[on] * np.log(q_on)))
    with np.errstate(divide="ignore"):
        return float(logsumexp(np.log(p[on]) + (alpha - 1) * np.log(q_on)) / (1 - alpha))


def sequence_scaled_cgf(p, r, m: int, t: float, lam: float = 0.0) -> float:
    """``(1/m) log E_{phi_lam} exp(t r(Y))`` for a length-``m`` sequence, from the exact levels.

    Equals ``Lambda(lam + t) - Lambda(lam)`` for every ``m`` (the scaled cumulants are exact).
    """
    t, lam = _as_real(t, "t"), _as_real(lam, "lam")
    levels, logpmf = sequence_reward_logpmf(p, r, m)
    log_phi = logpmf + lam * levels
    log_phi -= logsumexp(log_phi)
    return float(logsumexp(log_phi + t * levels) / m)


def tail_exponent(p, r, m: int, x: float, lam: float = 0.0) -> float:
    """``-(1/m) log P(r(Y)/m >= x)`` for ``Y`` from the tilt ``phi_lam`` of length ``m``; tends to ``I_lam(x)``."""
    x, lam = _as_real(x, "x"), _as_real(lam, "lam")
    levels, logpmf = sequence_reward_logpmf(p, r, m)
    log_phi = logpmf + lam * levels
    log_phi -= logsumexp(log_phi)
    return float(-logsumexp(log_phi[levels >= m * x - 1e-9]) / m)


# --------------------------------------------------------- best-of-N versus the KL-optimal tilt


def best_of_n_vs_tilt(p, r, m: int, delta: float) -> dict:
    """Best-of-N with ``N = exp(m * delta)`` against the tilt with ``KL = m * delta``, at length ``m``.

    Returns per-token values: ``reward_bon``, ``reward_tilt`` (= x*, the same for every m),
    ``kl_bon`` (KL(BoN || p) / m), ``bound`` ((log N - (N-1)/N) / m), ``kl_tilt`` (= delta),
    ``kl_bon_tilt`` (KL(BoN || tilt) / m), and ``kl_bon_tilt_total``, plus ``lam`` and ``log_n``.
    """
    p, r = _checked(p, r)
    m = _check_m(m)
    delta = _as_real(delta, "delta")
    if not 0 < delta < max_kl(p, r):
        raise ValueError(f"per-token delta must be in (0, -log p(argmax) = {max_kl(p, r):.4g}), got {delta!r}")
    _, lam = kl_constrained_optimum(p, r, delta)
    levels, logp = sequence_reward_logpmf(p, r, m)
    log_tilt = logp + lam * levels
    log_tilt -= logsumexp(log_tilt)
    log_n = m * delta
    log_bon = best_of_n_level_logpmf(logp, log_n=log_n)
    bon = np.exp(log_bon)
    between = level_kl(log_bon, log_tilt)
    return {
        "m": m, "delta": delta, "lam": lam, "log_n": log_n,
        "reward_bon": float(bon @ levels) / m, "reward_tilt": tilted_mean(p, r, lam),
        "kl_bon": level_kl(log_bon, logp) / m, "bound": best_of_n_kl_bound(log_n=log_n) / m,
        "kl_tilt": level_kl(log_tilt, logp) / m,
        "kl_bon_tilt": between / m, "kl_bon_tilt_total": between,
    }
