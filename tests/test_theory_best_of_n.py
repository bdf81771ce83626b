"""Chapter 4: exact best-of-n (ties broken uniformly), its KL, the bound, win rate and estimator."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit.theory import (
    best_of_n_distribution,
    best_of_n_expected_reward,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_kl_estimator,
    best_of_n_win_rate,
    kl,
    sample_best_of_n,
)


def random_problem(seed: int, k: int, ties: bool):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k) * 0.7)
    r = rng.integers(0, 3, size=k).astype(float) if ties else rng.normal(size=k)
    return p, r


def enumerate_best_of_n(p, r, n: int) -> np.ndarray:
    """Independent check: enumerate all n-tuples, split each tuple's mass over its tied winners."""
    out = np.zeros(len(p))
    for tup in itertools.product(range(len(p)), repeat=n):
        weight = np.prod(p[list(tup)])
        top = max(r[i] for i in tup)
        winners = [i for i in tup if r[i] == top]
        for i in winners:  # uniform over the draws with the top reward
            out[i] += weight / len(winners)
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), n=st.integers(1, 4), ties=st.booleans())
def test_distribution_matches_enumeration(seed, k, n, ties):
    p, r = random_problem(seed, k, ties)
    np.testing.assert_allclose(best_of_n_distribution(p, r, n), enumerate_best_of_n(p, r, n), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 30), log_n=st.floats(0, 12), ties=st.booleans())
def test_kl_bound_holds(seed, k, log_n, ties):
    """B3: KL(BoN||p) <= log n - (n-1)/n for random p and real n; B6: the gap <= 2n(n-1) sum p^2."""
    p, r = random_problem(seed, k, ties)
    n = float(np.exp(log_n))
    value = best_of_n_kl(p, r, n)
    assert value == pytest.approx(kl(best_of_n_distribution(p, r, n), p), abs=1e-9)
    assert value <= best_of_n_kl_bound(n) + 1e-12
    assert best_of_n_kl_bound(n) - value <= 2 * n * (n - 1) * np.sum(p**2) + 1e-12


def test_exact_matches_monte_carlo():
    """Sampling n draws and keeping the best gives the exact pmf within sampling error (TV)."""
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    r = np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # ties on purpose
    for n in (2, 5):
        idx = sample_best_of_n(p, r, n, 40_000, rng=n)
        freq = np.bincount(idx, minlength=p.size) / idx.size
        exact = best_of_n_distribution(p, r, n)
        assert 0.5 * np.abs(freq - exact).sum() < 0.015
        # the tie between outcomes 1 and 2 is split in proportion to p
        assert freq[1] / freq[2] == pytest.approx(p[1] / p[2], rel=0.08)


def test_uniform_table_and_saturation():
    """B4 and the uniform-K table (derived here): tight while n^2 << K, saturating at log K once n >> K."""
    uniform = lambda k: (np.ones(k) / k, np.arange(k, dtype=float))  # noqa: E731
    assert best_of_n_kl(*uniform(10_000), 16) == pytest.approx(best_of_n_kl_bound(16), abs=1e-4)
    assert best_of_n_kl(*uniform(10), 10_000) == pytest.approx(np.log(10), abs=1e-4)
    assert best_of_n_kl(*uniform(100), 256) == pytest.approx(4.3137, abs=1e-4)
    assert best_of_n_kl(*uniform(10_000), 10_000) == pytest.approx(8.1698, abs=1e-4)
    assert best_of_n_kl_bound(1000) == pytest.approx(5.9088, abs=1e-4)


def test_binary_counterexample():
    """B5: p = (1/2, 1/2): KL < log 2 for every n, approaching it; the bound exceeds log 2 from n = 4."""
    p, r = np.array([0.5, 0.5]), np.array([0.0, 1.0])
    values = [best_of_n_kl(p, r, n) for n in (2, 10, 100)]
    np.testing.assert_allclose(values, [0.1308, 0.6854, 0.69315], atol=1e-4)
    assert all(v < np.log(2) for v in values[:2])
    assert best_of_n_kl(p, r, log_n=50) == pytest.approx(np.log(2), abs=1e-9)


def test_huge_n_in_log_space():
    p, r = np.ones(10) / 10, np.arange(10.0)
    assert best_of_n_kl(p, r, log_n=3000) == pytest.approx(np.log(10), abs=1e-12)
    assert best_of_n_kl_bound(log_n=3000) == pytest.approx(2999.0)
    assert best_of_n_win_rate(p, r, log_n=3000) == pytest.approx(0.95)
    assert best_of_n_expected_reward(p, r, log_n=3000) == pytest.approx(9.0)
    # log_n and n agree where both are representable
    assert best_of_n_kl(p, r, 37.5) == pytest.approx(best_of_n_kl(p, r, log_n=np.log(37.5)), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 12), n=st.integers(1, 50), ties=st.booleans())
def test_win_rate(seed, k, n, ties):
    """B7: W <= n/(n+1), gap <= (n-1)/2 sum p^2; W matches a direct double sum over outcomes."""
    p, r = random_problem(seed, k, ties)
    bon = best_of_n_distribution(p, r, n)
    beats = (r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :])
    direct = bon @ beats @ p
    w = best_of_n_win_rate(p, r, n)
    assert w == pytest.approx(direct, abs=1e-12)
    assert w <= n / (n + 1) + 1e-12
    assert n / (n + 1) - w <= (n - 1) / 2 * np.sum(p**2) + 1e-12


def test_win_rate_continuous_limit():
    k = 100_000
    for n in (1, 4, 32):
        assert best_of_n_win_rate(np.ones(k) / k, np.arange(k, dtype=float), n) == pytest.approx(n / (n + 1), abs=1e-4)


def test_estimator():
    """B8: D_hat(eps) is the exact KL with a top atom of mass eps and many tiny atoms; in [0, bound]."""
    for eps, n in [(1e-2, 16), (0.1, 256), (0.5, 2)]:
        k = 200_000
        p = np.append(np.full(k, (1 - eps) / k), eps)
        r = np.arange(k + 1, dtype=float)
        assert best_of_n_kl_estimator(eps, n) == pytest.approx(best_of_n_kl(p, r, n), abs=1e-4)
    eps = np.logspace(-12, 0, 50)
    values = best_of_n_kl_estimator(eps, 64)
    assert np.all(values >= -1e-12) and np.all(values <= best_of_n_kl_bound(64) + 1e-12)
    assert best_of_n_kl_estimator(1e-4, log_n=2000) == pytest.approx(-np.log(1e-4), abs=1e-9)
    assert best_of_n_kl_estimator(0.1, 16) == pytest.approx(1.7561, abs=1e-4)


def test_bad_n_raises():
    with pytest.raises(ValueError, match="n must be"):
        best_of_n_kl([0.5, 0.5], [0, 1], 0.5)
    with pytest.raises(ValueError, match="exactly one"):
        best_of_n_kl([0.5, 0.5], [0, 1], 2, log_n=1.0)
    with pytest.raises(ValueError, match="eps"):
        best_of_n_kl_estimator(0.0, 4)


def test_best_of_n_from_pool_picks_group_maxima():
    from alignkit.theory import best_of_n_from_pool

    rewards = np.array([0.1, 0.5, 0.5, 0.9, 0.0, 0.3, 0.2, 0.7])
    picks = best_of_n_from_pool(rewards, 4, rng=0)
    assert picks.size == 2 and rewards[picks].max() == 0.9
    assert sorted(best_of_n_from_pool(rewards, 1, rng=0)) == list(range(8))
    with pytest.raises(ValueError, match="pool size"):
        best_of_n_from_pool(rewards, 9)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), n=st.integers(1, 6), ties=st.booleans())
def test_exact_matches_monte_carlo_random(seed, k, n, ties):
    """Property: for random p, r (with or without ties) and n, sampling agrees with the pmf (TV < 0.03)."""
    p, r = random_problem(seed, k, ties)
    idx = sample_best_of_n(p, r, n, 20_000, rng=seed)
    freq = np.bincount(idx, minlength=k) / idx.size
    assert 0.5 * np.abs(freq - best_of_n_distribution(p, r, n)).sum() < 0.03
