"""Chapter 4: memoryless LMs with additive rewards; sequence-level levels, LDP, best-of-N vs tilt."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import binom

from alignkit.theory import (
    best_of_n_kl,
    best_of_n_vs_tilt,
    cgf,
    kl,
    kl_constrained_optimum,
    rate_function,
    renyi_cross_entropy,
    sequence_reward_logpmf,
    sequence_scaled_cgf,
    tail_exponent,
    tilt,
)

BINARY = (np.array([0.7, 0.3]), np.array([0.0, 1.0]))
THREE = (np.array([0.5, 0.3, 0.2]), np.array([0.0, 1.0, 2.0]))


def enumerate_levels(p, r, m):
    """Brute force: every one of K^m sequences."""
    totals = {}
    for seq in itertools.product(range(len(p)), repeat=m):
        key = sum(r[i] for i in seq)
        totals[key] = totals.get(key, 0.0) + np.prod([p[i] for i in seq])
    return totals


def test_levels_match_enumeration_and_binomial():
    p, r = np.array([0.4, 0.1, 0.2, 0.3]), np.array([-1.0, 0.0, 2.0, 3.0])
    levels, logpmf = sequence_reward_logpmf(p, r, 6)
    brute = enumerate_levels(p, r, 6)
    for level, lp in zip(levels, logpmf, strict=True):
        assert np.exp(lp) == pytest.approx(brute.get(level, 0.0), abs=1e-14, rel=1e-10)
    _, lp = sequence_reward_logpmf(*BINARY, 10_000)
    np.testing.assert_allclose(lp, binom.logpmf(np.arange(10_001), 10_000, 0.3), atol=1e-8, rtol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), m=st.integers(1, 120))
def test_fft_matches_direct_log_convolution(seed, m):
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 5)
    p = rng.dirichlet(np.ones(k))
    r = rng.choice(np.arange(-2, 6), size=k, replace=False).astype(float)
    a, b = sequence_reward_logpmf(p, r, m), sequence_reward_logpmf(p, r, m, method="direct")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(np.isinf(a[1]), np.isinf(b[1]))
    on = np.isfinite(b[1])
    np.testing.assert_allclose(a[1][on], b[1][on], atol=1e-8, rtol=1e-9)


@pytest.mark.parametrize("m", [1, 7, 300])
@pytest.mark.parametrize("t", [-0.8, 0.4, 1.5])
def test_scaled_cgf_is_exact_for_every_m(m, t):
    """B10: (1/m) log E_phi exp(t r(Y)) = Lambda(lam + t) - Lambda(lam)."""
    lam = 0.7
    expected = cgf(*THREE, lam + t) - cgf(*THREE, lam)
    assert sequence_scaled_cgf(*THREE, m, t, lam) == pytest.approx(expected, abs=1e-9)


def test_rate_function_and_tail_exponents():
    """LDP numbers (derived here, checked numerically); tails approach I_lam(x) from above as m grows."""
    for x, lam, rate, tails in [(1.0, 0.0, 0.06993, (0.1053, 0.0819, 0.0738)),
                                (1.5, 0.0, 0.49301, (0.5371, 0.5075, 0.4975)),
                                (1.6, 0.7, 0.16138, (0.1988, 0.1741, 0.1654))]:
        assert rate_function(*THREE, x, lam) == pytest.approx(rate, abs=1e-5)
        got = [tail_exponent(*THREE, m, x, lam) for m in (50, 200, 800)]
        np.testing.assert_allclose(got, tails, atol=1e-4)
        assert got[0] > got[1] > got[2] > rate
    assert rate_function(*THREE, 0.7) == pytest.approx(0.0, abs=1e-10)  # zero at the mean
    assert rate_function(*THREE, 2.0) == pytest.approx(-np.log(0.2))
    assert rate_function(*THREE, 2.5) == np.inf


def test_renyi_reading():
    p, r = THREE
    q = np.exp(r) / np.exp(r).sum()
    for s in (0.5, 2.0):
        reading = -s * renyi_cross_entropy(p, q, 1 + s) + s * logsumexp(r)
        assert reading == pytest.approx(cgf(p, r, s), abs=1e-9)
    assert cgf(p, r, 0.5) == pytest.approx(0.430660, abs=1e-6)


def test_m1_binary_bon_is_a_tilt():
    """B11: for a binary alphabet and m = 1, best-of-N is exactly the tilt with the same KL."""
    p, r = np.array([0.7, 0.3]), np.array([0.0, 1.0])
    for n in (2, 5, 20):
        from alignkit.theory import best_of_n_distribution

        bon = best_of_n_distribution(p, r, n)
        phi, _ = kl_constrained_optimum(p, r, best_of_n_kl(p, r, n))
        assert kl(bon, phi) < 1e-12


@pytest.mark.parametrize("m, reward, kl_bon, between", [
    (10, 0.41256, 0.03497, 2.74e-2), (100, 0.49289, 0.08948, 9.18e-3),
    (1000, 0.51126, 0.09894, 1.99e-3), (10_000, 0.51417, 0.09989, 3.13e-4)])
def test_derived_table_binary(m, reward, kl_bon, between):
    """The asymptotic table, derived here and checked numerically (binary source, delta = 0.1 per
    token, N = exp(m delta))."""
    row = best_of_n_vs_tilt(*BINARY, m, 0.1)
    assert row["reward_bon"] == pytest.approx(reward, abs=1e-5)
    assert row["kl_bon"] == pytest.approx(kl_bon, abs=1e-5)
    assert row["kl_bon_tilt"] == pytest.approx(between, rel=5e-3)
    assert row["kl_tilt"] == pytest.approx(0.1, abs=1e-9)
    assert row["reward_tilt"] == pytest.approx(0.514629, abs=1e-6)
    assert row["kl_bon"] <= row["bound"]


def test_asymptotic_equivalence_b9():
    """B9: per-token KL(BoN||tilt) decreases in m, < 5e-4 at m = 1e4; reward within 1e-3 of x*."""
    rows = [best_of_n_vs_tilt(*BINARY, m, 0.1) for m in (100, 1000, 10_000)]
    between = [row["kl_bon_tilt"] for row in rows]
    assert between[0] > between[1] > between[2] and between[2] < 5e-4
    assert abs(rows[-1]["reward_bon"] - rows[-1]["reward_tilt"]) < 1e-3
    # the total KL grows by about 1/2 per unit of log m
    growth = (rows[2]["kl_bon_tilt_total"] - rows[1]["kl_bon_tilt_total"]) / np.log(10)
    assert 0.4 < growth < 0.6


def test_three_letter_source():
    row = best_of_n_vs_tilt(*THREE, 400, 0.15)
    assert row["lam"] == pytest.approx(0.6693, abs=1e-4)
    assert row["reward_bon"] == pytest.approx(1.13177, abs=1e-5)
    assert row["kl_bon"] == pytest.approx(0.14741, abs=1e-5)
    assert row["kl_bon_tilt"] == pytest.approx(4.35e-3, rel=5e-3)


def test_tilt_levels_agree_with_sequence_tilt():
    """The tilted level distribution equals the level distribution of the per-token tilt."""
    p, r = THREE
    lam = 0.6
    levels, logp = sequence_reward_logpmf(p, r, 40)
    via_levels = logp + lam * levels - 40 * cgf(p, r, lam)
    _, direct = sequence_reward_logpmf(tilt(p, r, lam), r, 40)
    np.testing.assert_allclose(via_levels, direct, atol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="integers"):
        sequence_reward_logpmf([0.5, 0.5], [0, 0.5], 3)
    with pytest.raises(ValueError, match="m must"):
        sequence_reward_logpmf([0.5, 0.5], [0, 1], 0)
    with pytest.raises(ValueError, match="delta"):
        best_of_n_vs_tilt([0.5, 0.5], [0, 1], 10, 1.0)
