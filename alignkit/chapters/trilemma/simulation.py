"""Seeded Monte Carlo simulations of the RLHF trilemma's three properties.

Each simulation illustrates one mechanism under assumptions
it states (the paper, arXiv 2511.19504, is a position paper without experiments): a
homogeneous annotator pool cannot represent a diverse population however many labels it
gives (representativeness); per-context preferences need samples that double with each binary
context dimension (tractability); a robust aggregator that resists poisoned annotators also
trims the genuine minority (robustness vs representativeness). Same seed, same numbers.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from alignkit.theory.preferences import pooled_rate

POOLS = ("diverse", "homogeneous")
AGGREGATORS = ("mean", "trimmed", "median")


def pool_bias(weights, rates, pool: str) -> float:
    """|population rate - rate the pool estimates|: 0 for a diverse pool, the floor for a homogeneous one.

    A homogeneous pool samples only group 0 (the majority), so it estimates ``rates[0]``.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    truth = pooled_rate(weights, rates)
    return 0.0 if pool == "diverse" else abs(float(rates[0]) - truth)


def representativeness_errors(weights, rates, sample_sizes, pool: str = "diverse", *,
                              repeats: int = 500, seed: int = 0) -> np.ndarray:
    """Absolute error of the estimated population preference rate, ``(sample sizes, repeats)``.

    Each annotator is drawn from the pool (the whole population, or only group 0 when
    ``pool="homogeneous"``) and gives one Bernoulli label with their group's rate; the estimate is
    the fraction of A-labels. One row per sample size, one column per seeded repetition (the
    units a bootstrap resamples).
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    truth = pooled_rate(weights, rates)
    rng = np.random.default_rng(seed)
    w = np.asarray(weights, dtype=float) if pool == "diverse" else np.eye(len(weights))[0]
    errors = []
    for m in np.atleast_1d(sample_sizes):
        if m < 1:
            raise ValueError(f"sample sizes must be >= 1, got {m!r}")
        per_group = rng.multinomial(int(m), w, size=repeats)  # annotators per group
        wins = rng.binomial(per_group, np.asarray(rates, dtype=float)).sum(axis=1)
        errors.append(np.abs(wins / m - truth))
    return np.array(errors)


def simulate_representativeness(weights, rates, sample_sizes, pool: str = "diverse", *,
                                repeats: int = 500, seed: int = 0) -> np.ndarray:
    """Mean absolute error of the estimated population preference rate, one value per sample size.

    The mean over repetitions of :func:`representativeness_errors` (same arguments, same numbers).
    """
    return representativeness_errors(weights, rates, sample_sizes, pool, repeats=repeats,
                                     seed=seed).mean(axis=1)


def coverage_error(d: int, samples: int, *, repeats: int = 200, seed: int = 0) -> float:
    """Mean absolute error over the 2^d binary contexts of per-context preference estimates.

    Each context has its own rate ~ U(0, 1) (no structure: the worst case of the bound); samples
    land on uniformly random contexts; a context is estimated by its sample mean, 0.5 if unseen.
    """
    if int(d) != d or d < 0:
        raise ValueError(f"d must be an integer >= 0, got {d!r}")
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples!r}")
    rng = np.random.default_rng(seed)
    k = 2 ** int(d)
    rate = rng.uniform(size=(repeats, k))
    counts = rng.multinomial(int(samples), np.full(k, 1 / k), size=repeats)
    wins = rng.binomial(counts, rate)
    est = np.where(counts > 0, wins / np.maximum(counts, 1), 0.5)
    return float(np.mean(np.abs(est - rate)))


def coverage_samples_needed(d: int, target: float = 0.1, *, repeats: int = 200, seed: int = 0) -> int:
    """Smallest sample size whose simulated ``coverage_error`` is <= ``target`` (bisection, same seed).

    An independent run of this design gave 20, 48, 86, 178, 369, 706, 1464, 2800 for d = 1..8 at 0.1
    with 200 repetitions (its own seeds; ours differ by Monte Carlo noise).
    """
    if not (0 < target < 0.25):
        raise ValueError(f"target must be in (0, 0.25) (0.25 is the error with no data), got {target!r}")
    hi = 16
    while coverage_error(d, hi, repeats=repeats, seed=seed) > target:
        hi *= 2
    lo = hi // 2 if hi > 16 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if coverage_error(d, mid, repeats=repeats, seed=seed) <= target:
            hi = mid
        else:
            lo = mid + 1
    return int(lo)


def _aggregate(annotator_means: np.ndarray, aggregator: str, trim: float) -> np.ndarray:
    """Aggregate each row of annotator means into one rate."""
    if aggregator == "mean":
        return annotator_means.mean(axis=1)
    if aggregator == "trimmed":
        if not (0 <= trim < 0.5):
            raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
        return stats.trim_mean(annotator_means, trim, axis=1)
    if aggregator == "median":
        return np.median(annotator_means, axis=1)
    raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")


def poisoning_estimates(alpha: float, *, aggregator: str = "mean", trim: float = 0.1,
                        weights=(0.7, 0.3), rates=(0.9, 0.1), annotators: int = 200,
                        labels_per_annotator: int = 5, adversary_value: float = 0.0,
                        repeats: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-repetition estimates of an aggregator of annotator means, without and with attack.

    Honest annotators come from the population (``weights``, ``rates``) and give
    ``labels_per_annotator`` Bernoulli labels each; in the poisoned run a fraction ``alpha`` of them
    is replaced by adversaries whose labels are all ``adversary_value`` (0 pushes towards the
    minority's side, where a robust aggregator cannot tell them from the minority). The same
    honest labels are used in both runs, and the same seed gives the same honest labels for every
    aggregator (so aggregators can be compared paired, repetition by repetition). Returns
    ``clean`` and ``poisoned`` estimates (one per repetition) and the population rate ``truth``.
    """
    if not (0 <= alpha < 1):
        raise ValueError(f"alpha (fraction of poisoned annotators) must be in [0, 1), got {alpha!r}")
    if not (0 <= adversary_value <= 1):
        raise ValueError(f"adversary_value must be in [0, 1], got {adversary_value!r}")
    truth = pooled_rate(weights, rates)
    rng = np.random.default_rng(seed)
    group = rng.choice(len(weights), p=np.asarray(weights, dtype=float), size=(repeats, annotators))
    means = rng.binomial(labels_per_annotator, np.asarray(rates, dtype=float)[group]) / labels_per_annotator
    poisoned = means.copy()
    n_bad = int(round(alpha * annotators))
    poisoned[:, :n_bad] = adversary_value  # annotators are exchangeable: replace the first n_bad
    return {"clean": _aggregate(means, aggregator, trim), "poisoned": _aggregate(poisoned, aggregator, trim),
            "truth": np.full(repeats, truth)}


def simulate_poisoning(alpha: float, **kwargs) -> dict[str, float]:
    """Errors of an aggregator of annotator means, without and with a fraction ``alpha`` of adversaries.

    Arguments as :func:`poisoning_estimates`. Returns mean absolute errors against the population
    rate, ``clean`` and ``poisoned``, and ``damage`` = mean |poisoned - clean| estimate: how far the
    attack moved the aggregator. Damage, not the poisoned error, measures robustness: an
    aggregator biased away from the truth without attack (a trimmed mean cuts more of the minority
    than of the majority) can land closer to the truth when the attack pushes the other way.
    """
    est = poisoning_estimates(alpha, **kwargs)
    return {
        "clean": float(np.mean(np.abs(est["clean"] - est["truth"]))),
        "poisoned": float(np.mean(np.abs(est["poisoned"] - est["truth"]))),
        "damage": float(np.mean(np.abs(est["poisoned"] - est["clean"]))),
    }


def tradeoff_frontier(trims, *, alpha: float = 0.1, annotators: int = 200, **kwargs) -> dict[str, np.ndarray]:
    """Error without attack (``clean``), under attack (``poisoned``) and ``damage`` of trimmed means.

    One value per trimming fraction in ``trims``: ``trim = 0`` is the plain mean (most
    representative), trims near 0.5 approach the median (barely moved by this adversary, but it
    erases the minority). ``annotators`` is the sample budget: the third corner of the trilemma.
    Other keyword arguments go to ``simulate_poisoning``. The path over ``trims`` need not be
    monotone (annotator means sit on a lattice, the attack can cancel a bias): the trade-off
    itself is :func:`pareto_front` of ``clean`` and ``damage``. Chapter 5's frontier figure.
    """
    rows = [simulate_poisoning(alpha, aggregator="trimmed", trim=float(t), annotators=annotators, **kwargs)
            for t in trims]
    return {"trim": np.asarray(trims, dtype=float),
            "clean": np.array([r["clean"] for r in rows]),
            "poisoned": np.array([r["poisoned"] for r in rows]),
            "damage": np.array([r["damage"] for r in rows])}


def pareto_front(x, y) -> np.ndarray:
    """Indices of the points no other point beats on both ``x`` and ``y`` (lower is better), by x.

    The trade-off frontier of chapter 5: of all aggregators, keep those for which no other one
    is both more representative (lower ``x``) and more robust (lower ``y``). Along the front
    ``x`` increases and ``y`` decreases, so the front is monotone even when the path of the
    aggregators over their parameter folds back. Ties keep the first point.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"x and y must be non-empty 1-d arrays of one shape, got {x.shape} and {y.shape}")
    front, best_y = [], np.inf
    for i in np.lexsort((y, x)):  # by x, then y
        if y[i] < best_y:
            front.append(int(i))
            best_y = y[i]
    return np.array(front, dtype=int)
