"""Best-of-n on a discrete distribution, exactly and in log space (n up to e^3000).

Best-of-n draws ``n`` samples from ``p`` and keeps the one with the highest reward, breaking ties
uniformly at random. Everything here works on **reward levels**: within a level, best-of-n and
``p`` (and every tilt of ``p``) are proportional to ``p``, so every KL among them equals the KL
between their distributions over levels. With ``F`` the CDF over levels, level ``k`` gets
``F(k)^n - F(k-1)^n``. For huge ``n`` we write ``F(k)^n = exp(-c(k))`` with
``c(k) = exp(log n + log(-log F(k)))`` and ``F(k)^n - F(k-1)^n = exp(-c(k)) * -expm1(c(k) - c(k-1))``.

Pass ``n`` (a real number >= 1) or ``log_n=`` (a real number >= 0) to every function.
Chapter 4 introduces it (Beirami et al. 2024, arXiv 2401.01879; Yang et al. 2024, arXiv 2404.01730).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from alignkit.theory.divergence import _as_array, _as_distribution, _as_int, _as_real, _checked


def resolve_log_n(n: float | None = None, log_n: float | None = None) -> float:
    """``log n`` from exactly one of ``n >= 1`` or ``log_n >= 0``; raises ``ValueError`` otherwise."""
    if (n is None) == (log_n is None):
        raise ValueError(f"pass exactly one of n (>= 1) or log_n (>= 0), got n={n!r}, log_n={log_n!r}")
    if n is not None:
        try:
            n = _as_real(n, "n", low=1)
        except ValueError:
            raise ValueError(f"n must be a finite real number >= 1, got {n!r} (use log_n= for huge n)") from None
        return float(np.log(n))
    try:
        return _as_real(log_n, "log_n", low=0)
    except ValueError:
        raise ValueError(f"log_n must be a finite real number >= 0, got {log_n!r}") from None


def reward_levels(p, r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rewards on ``p``'s support, sorted ascending, their masses, and each outcome's level.

    Returns ``(levels, mass, index)`` where ``index[y]`` is the level of outcome ``y`` (-1 off the
    support). Exact equality defines a tie.
    """
    p, r = _checked(p, r)
    support = p > 0
    levels, inverse = np.unique(r[support], return_inverse=True)
    mass = np.bincount(inverse, weights=p[support], minlength=levels.size)
    index = np.full(p.shape, -1)
    index[support] = inverse
    return levels, mass, index


def best_of_n_level_logpmf(log_mass, n: float | None = None, *, log_n: float | None = None) -> np.ndarray:
    """Log-probabilities of best-of-n over reward levels sorted ascending, given their log-masses.

    Stable for any ``log_n`` (e.g. 3000): uses ``log1p``/``expm1`` and never forms ``n`` itself.
    """
    ln = resolve_log_n(n, log_n)
    log_mass = _as_array(log_mass, "log_mass", allow_neg_inf=True)
    if not np.any(np.isfinite(log_mass)):
        raise ValueError("log_mass must have at least one finite entry (a level with positive mass)")
    log_cdf = np.logaddexp.accumulate(log_mass)  # log F(k)
    log_cdf -= log_cdf[-1]  # exact normalisation: F(top) = 1
    log_sf = np.append(np.logaddexp.accumulate(log_mass[::-1])[::-1][1:], -np.inf)  # log S(k)
    log_sf -= logsumexp(log_mass)
    sf = np.exp(log_sf)
    with np.errstate(divide="ignore", invalid="ignore"):
        # log(-log F): via S when F is near 1 (-log F = -log1p(-S) ~ S), via log F otherwise
        # -log1p(-S) / S = 1 + S/2 + ..., which is 1 to double precision below S = 1e-16
        ratio = np.where(sf > 1e-16, -np.log1p(-np.minimum(sf, 0.5)) / np.maximum(sf, 1e-16), 1.0)
        log_neg_log_f = np.where(sf < 0.5, log_sf + np.log(ratio), np.log(-log_cdf))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        c = np.exp(ln + log_neg_log_f)  # c(k) = -n log F(k); c(top) = 0; may overflow to inf (fine)
        c_prev = np.append(np.inf, c[:-1])  # F(-1) = 0, so c(-1) = inf
        out = -c + np.log(-np.expm1(c - c_prev))
    return np.where(np.isfinite(c), out, -np.inf)


def best_of_n_distribution(p, r, n: float | None = None, *, log_n: float | None = None) -> np.ndarray:
    """The best-of-n policy over outcomes: ``p(y) * (F^n - F_-^n) / (F - F_-)`` at ``y``'s level.

    Ties in ``r`` are broken uniformly at random, so within a level the policy is proportional to ``p``.
    """
    p = _as_distribution(p, "p")
    levels, mass, index = reward_levels(p, r)
    level_probs = np.exp(best_of_n_level_logpmf(np.log(mass), n, log_n=log_n))
    out = np.zeros_like(p)
    on = index >= 0
    out[on] = p[on] / mass[index[on]] * level_probs[index[on]]
    return out / out.sum()


def level_kl(log_a, log_b) -> float:
    """KL between two distributions given by log-probabilities on the same levels (``inf`` if needed)."""
    log_a = _as_array(log_a, "log_a", allow_neg_inf=True)
    log_b = _as_array(log_b, "log_b", allow_neg_inf=True)
    if log_a.shape != log_b.shape:
        raise ValueError(f"log_a and log_b must be on the same levels, got shapes {log_a.shape} and {log_b.shape}")
    on = np.isfinite(log_a)
    if np.any(~np.isfinite(log_b[on])):
        return float("inf")
    return float(max(np.sum(np.exp(log_a[on]) * (log_a[on] - log_b[on])), 0.0))


def best_of_n_kl(p, r, n: float | None = None, *, log_n: float | None = None) -> float:
    """``KL(best-of-n || p)`` in nats, exactly (computed on reward levels)."""
    _, mass, _ = reward_levels(p, r)
    log_mass = np.log(mass)
    return level_kl(best_of_n_level_logpmf(log_mass, n, log_n=log_n), log_mass)


def best_of_n_kl_bound(n: float | None = None, *, log_n: float | None = None) -> float:
    """``log n - (n - 1) / n``: the widely quoted "KL of best-of-n", which is an upper bound."""
    ln = resolve_log_n(n, log_n)
    return float(ln - 1.0 + np.exp(-ln))


def best_of_n_win_rate(p, r, n: float | None = None, *, log_n: float | None = None) -> float:
    """P(reward of a best-of-n sample > reward of an independent ``p`` sample), ties counting 1/2.

    At most ``n / (n + 1)``, with equality when the reward has no ties.
    """
    _, mass, _ = reward_levels(p, r)
    log_mass = np.log(mass)
    bon = np.exp(best_of_n_level_logpmf(log_mass, n, log_n=log_n))
    below = np.cumsum(mass) - mass  # F_-(k)
    return float(np.dot(bon, below + 0.5 * mass))


def best_of_n_expected_reward(p, r, n: float | None = None, *, log_n: float | None = None) -> float:
    """``E r`` under best-of-n."""
    levels, mass, _ = reward_levels(p, r)
    return float(np.dot(np.exp(best_of_n_level_logpmf(np.log(mass), n, log_n=log_n)), levels))


def best_of_n_kl_estimator(eps, n: float | None = None, *, log_n: float | None = None):
    """Beirami et al.'s KL estimator ``D_hat(eps)`` (arXiv 2401.01879; formula: secondary source, unverified).

    ``D_hat = (1-eps)^n (log n + (n-1) log(1-eps) - (n-1)/n)
    + (1 - (1-eps)^n) log((1 - (1-eps)^n) / eps)``, where ``eps`` is the reference probability of
    the selected (or top) outcome. It is the exact KL of best-of-n when the top outcome has mass
    ``eps`` and the rest is continuous; ``0 <= D_hat <= log n - (n-1)/n``. Vectorised over ``eps``.
    """
    ln = resolve_log_n(n, log_n)
    eps = _as_array(eps, "eps", ndim=None)
    if np.any(~(eps > 0)) or np.any(eps > 1):
        raise ValueError(f"eps must be probabilities in (0, 1], got {eps}")
    frac = -np.expm1(-ln)  # (n - 1) / n, without forming n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_q = -np.exp(ln + np.log(-np.log1p(-eps)))  # log (1-eps)^n; -inf at eps = 1
        q = np.exp(log_q)
        first = np.where(q > 0, q * (ln + frac * log_q - frac), 0.0)
        one_minus_q = -np.expm1(log_q)
        second = one_minus_q * (np.log(one_minus_q) - np.log(eps))
    out = np.maximum(first + second, 0.0)  # rounding can give -1e-17
    return float(out) if out.ndim == 0 else out


def _as_rng(rng) -> np.random.Generator:
    """A numpy Generator from a Generator, an int seed >= 0 or None."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    return np.random.default_rng(_as_int(rng, "rng (a Generator, an int seed >= 0 or None)", low=0))


def sample_best_of_n(p, r, n: int, size: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Monte Carlo best-of-n: ``size`` indices, each the best of ``n`` draws from ``p``.

    Ties go to the first draw with the top reward; draws are i.i.d., so within a level the
    winner is distributed like ``p`` (uniform tie-breaking). Chapter 4 uses it to check the
    exact formulas.
    """
    p, r = _checked(p, r)
    try:
        n = _as_int(n, "n", low=1)
    except ValueError:
        raise ValueError(f"sampling needs an integer n >= 1, got {n!r}") from None
    size = _as_int(size, "size", low=0)
    rng = _as_rng(rng)
    draws = rng.choice(p.size, size=(size, int(n)), p=p)
    best = np.argmax(r[draws], axis=1)
    return draws[np.arange(size), best]


def best_of_n_from_pool(rewards, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Indices of real best-of-n picks from a pool of sampled completions' rewards.

    The pool is shuffled and cut into ``len(rewards) // n`` disjoint groups of ``n``; each group
    keeps its highest reward (ties: the first in the shuffled order, i.e. uniformly at random).
    Chapter 4 uses it for best-of-N on the bundled language model.
    """
    rewards = _as_array(rewards, "rewards")
    try:
        n = _as_int(n, "n", low=1, high=rewards.size)
    except ValueError:
        raise ValueError(f"n must be an integer in [1, pool size {rewards.size}], got {n!r}") from None
    rng = _as_rng(rng)
    groups = rng.permutation(rewards.size)[: (rewards.size // int(n)) * int(n)].reshape(-1, int(n))
    return groups[np.arange(groups.shape[0]), np.argmax(rewards[groups], axis=1)]
