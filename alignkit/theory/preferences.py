"""Pooled preferences: Bradley-Terry fits, preference collapse under KL-regularised RL, aggregators.

Chapter 5 introduces this module. The mechanism the RLHF trilemma paper (arXiv 2511.19504)
names "preference collapse" in one formalisation: a population of groups with different
preference rates is summarised by *one* scalar Bradley-Terry reward, which only sees the pooled
rate; the KL-regularised optimal policy ``pi ~ pi_0 exp(r / beta)`` then moves mass towards
the majority's response as beta shrinks. The aggregators (mean, trimmed mean, median of means)
are the two sides of the robustness-representativeness trade-off.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, logit

from alignkit.theory.divergence import _as_array, _as_distribution, _as_int, _as_real, tilt


def pooled_rate(weights, rates) -> float:
    """The population's rate of preferring A: sum_g w_g p_g (weights must sum to 1)."""
    w = _as_array(weights, "weights", ndim=None, nonempty=False)
    p = _as_array(rates, "rates", ndim=None, nonempty=False)
    if w.shape != p.shape or w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights and rates must be 1-D of equal length, got {w.shape} and {p.shape}")
    if np.any(w < 0) or abs(w.sum() - 1) > 1e-8:
        raise ValueError(f"weights must be non-negative and sum to 1, got {w.tolist()}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"rates must lie in [0, 1], got {p.tolist()}")
    return float(w @ p)


def bt_reward_gap(rate: float) -> float:
    """The Bradley-Terry maximum-likelihood gap r_A - r_B = logit(rate) for one pair of responses.

    With only two responses the BT likelihood depends on the labels only through the fraction
    of A-wins, so the MLE is its logit: every group structure with the same pooled rate gives the
    same reward. That is the collapse.
    """
    rate = _as_real(rate, "rate")
    if not (0 < rate < 1):
        raise ValueError(f"rate must be in (0, 1) for a finite Bradley-Terry gap, got {rate!r}")
    return float(logit(rate))


def _item_indices(x, name: str) -> np.ndarray:
    """A 1-D array of integer item indices (floats must be whole numbers: 1.7 is not an item)."""
    a = _as_array(x, name, nonempty=False)
    if np.any(a != np.round(a)):
        raise ValueError(f"{name} must be integer item indices, got {a[a != np.round(a)][:5].tolist()}")
    return a.astype(int)


def fit_bradley_terry(winners, losers, n_items: int, l2: float = 0.0) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry rewards for ``n_items`` from comparisons (winner, loser).

    Minimises sum -log sigma(r_w - r_l) + l2 / 2 |r|^2 with scipy's L-BFGS; rewards are shifted to
    mean zero (BT only identifies differences). With ``l2 = 0`` every item must win and lose at
    least once for the MLE to be finite.
    """
    w, lo = _item_indices(winners, "winners"), _item_indices(losers, "losers")
    if w.shape != lo.shape or w.size == 0:
        raise ValueError(f"winners and losers must be non-empty and equal length, got {w.shape}, {lo.shape}")
    n_items = _as_int(n_items, "n_items", low=2)
    l2 = _as_real(l2, "l2", low=0)
    if min(w.min(), lo.min()) < 0 or max(w.max(), lo.max()) >= n_items:
        raise ValueError(f"winners and losers must be item indices in [0, n_items={n_items}), got "
                         f"min {min(w.min(), lo.min())}, max {max(w.max(), lo.max())}")

    def loss(r):
        margin = r[w] - r[lo]
        value = np.sum(np.logaddexp(0.0, -margin)) + 0.5 * l2 * r @ r
        coef = -expit(-margin)
        grad = np.bincount(w, coef, n_items) - np.bincount(lo, coef, n_items) + l2 * r
        return value, grad

    res = optimize.minimize(loss, np.zeros(n_items), jac=True, method="L-BFGS-B",
                            options={"maxiter": 1000, "gtol": 1e-10})
    return res.x - res.x.mean()


def kl_policy(reward, beta: float, reference=None) -> np.ndarray:
    """The KL-regularised optimum argmax E[r] - beta KL(pi || pi_0) = tilt(pi_0, r, 1 / beta)."""
    reward = _as_array(reward, "reward")
    beta = _as_real(beta, "beta", low=0, low_open=True)
    ref = np.full(reward.size, 1.0 / reward.size) if reference is None else _as_distribution(reference, "reference")
    if ref.shape != reward.shape:
        raise ValueError(f"reference must have reward's shape {reward.shape}, got {ref.shape}")
    return tilt(ref, reward, 1.0 / beta)


def collapse_curve(weights, rates, betas) -> np.ndarray:
    """Mass the KL-optimal policy keeps on response B (the minority's) for each beta.

    Groups ``weights`` prefer A with probabilities ``rates``; one scalar BT reward is fitted to the
    pooled labels (gap logit(pooled)), and pi ~ uniform * exp(r / beta). Closed form:
    pi(B) = 1 / (1 + exp(gap / beta)). Derived here (checked numerically): 0.7/0.3 groups at 0.9/0.1 give
    48.34%, 34.00%, 9.88%, 0.131% at beta = 10, 1, 0.3, 0.1.
    """
    gap = bt_reward_gap(pooled_rate(weights, rates))
    betas = np.atleast_1d(_as_array(betas, "betas", ndim=None))
    if betas.ndim != 1 or np.any(betas <= 0):
        raise ValueError(f"betas must be a number or a 1-D array of numbers > 0, got {betas}")
    return np.array([kl_policy([gap, 0.0], b)[1] for b in betas.tolist()])


def trimmed_mean(values, trim: float) -> float:
    """Mean after dropping the ``trim`` fraction at each end (scipy.stats.trim_mean)."""
    trim = _as_real(trim, "trim", low=0, high=0.5, high_open=True)
    return float(stats.trim_mean(_as_array(values, "values"), trim))


def median_of_means(values, blocks: int, rng: np.random.Generator | None = None) -> float:
    """Median of the means of ``blocks`` equal random blocks (all values used, shuffled by ``rng``)."""
    x = _as_array(values, "values")
    blocks = _as_int(blocks, "blocks", low=1, high=x.size)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    if rng is not None:
        x = rng.permutation(x)
    return float(np.median([b.mean() for b in np.array_split(x, int(blocks))]))


def group_median(values, groups) -> float:
    """Median of per-group means: every group counts once, whatever its size."""
    x = _as_array(values, "values")
    if groups is None or isinstance(groups, (str, bytes, dict)):
        raise TypeError(f"groups must be an array of group labels (one per value), got {type(groups).__name__}")
    g = np.asarray(groups)
    if g.shape != x.shape:
        raise ValueError(f"groups must have one label per value: values {x.shape}, groups {g.shape}")
    return float(np.median([x[g == k].mean() for k in np.unique(g)]))
