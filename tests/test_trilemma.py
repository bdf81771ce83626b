"""Chapter 5: trilemma calculators against closed forms, exact binomials and Monte Carlo."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alignkit.theory import trilemma as tri

EPS, DELTA = 0.01, 0.001


@pytest.mark.parametrize("groups, expected", [(1, 3.80e4), (30, 1.65e6), (180, 1.15e7),
                                              (1000, 7.25e7), (10_000, 8.41e8)])
def test_hoeffding_union_matches_derived_table(groups, expected):
    got = tri.hoeffding_union_samples(EPS, DELTA, groups)
    assert float(f"{got:.3g}") == expected
    assert got == groups * math.ceil(math.log(2 * groups / DELTA) / (2 * EPS**2))


@pytest.mark.parametrize("groups, expected", [(1, 2.71e4), (30, 1.29e6), (180, 9.29e6),
                                              (1000, 5.98e7), (10_000, 7.09e8)])
def test_normal_approx_matches_derived_table(groups, expected):
    assert float(f"{tri.normal_approx_samples(EPS, DELTA, groups):.3g}") == expected


def test_headline_numbers():
    h = tri.headline_numbers()
    assert h["inverse_eps2_delta"] == pytest.approx(1e7, rel=1e-12)
    assert 100 <= h["groups_at_1e7"] <= 200 and 1000 <= h["groups_at_1e8"] <= 2000  # "10^2-10^3 strata"
    assert h["epsilon_at_1e3"] == pytest.approx(math.sqrt(math.log(2000) / 2000))
    assert round(h["epsilon_at_1e3"], 2) == 0.06 and round(h["epsilon_at_1e4"], 2) == 0.02
    assert 2 ** (h["d_for_1e9_saving"] / 2) == pytest.approx(1e9)
    assert 2**30 == pytest.approx(1.07e9, rel=1e-2)


def test_groups_supported_is_the_largest_that_fits():
    g = tri.groups_supported(1e7, EPS, DELTA)
    assert tri.hoeffding_union_samples(EPS, DELTA, g) <= 1e7 < tri.hoeffding_union_samples(EPS, DELTA, g + 1)
    assert tri.groups_supported(10, EPS, DELTA) == 0


def test_achievable_epsilon_inverts_hoeffding():
    m = tri.hoeffding_union_samples(0.05, 0.01, 7)
    assert tri.achievable_epsilon(m, 0.01, 7) == pytest.approx(0.05, rel=1e-3)


def test_exact_binomial_is_tight_and_sufficient():
    n = tri.exact_binomial_samples(0.05, 0.05)
    assert tri.binomial_failure(n, 0.05) <= 0.05 < tri.binomial_failure(n - 20, 0.05)
    assert n < tri.hoeffding_union_samples(0.05, 0.05)  # tighter than Hoeffding
    # the exact size lies between the normal approximation's neighbourhood and Hoeffding's
    assert abs(n - tri.normal_approx_samples(0.05, 0.05)) / n < 0.05


def test_binomial_failure_against_monte_carlo():
    rng = np.random.default_rng(0)
    n, eps, p = 200, 0.05, 0.3
    k = rng.binomial(n, p, size=200_000)
    mc = np.mean(np.abs(k / n - p) > eps)
    assert tri.binomial_failure(n, eps, p) == pytest.approx(mc, abs=0.004)


def test_hoeffding_union_guarantee_by_monte_carlo():
    """All G group estimates within eps at least 1 - delta of the time (the bound is conservative)."""
    rng = np.random.default_rng(1)
    eps, delta, groups = 0.05, 0.1, 5
    n = tri.hoeffding_union_samples(eps, delta, groups) // groups
    rates = rng.uniform(size=groups)
    est = rng.binomial(n, rates, size=(20_000, groups)) / n
    failure = np.mean(np.any(np.abs(est - rates) > eps, axis=1))
    assert failure <= delta
    # the normal approximation at p = 1/2 gives roughly, not exactly, its nominal failure rate
    n_norm = tri.normal_approx_samples(eps, delta, 1)
    est = rng.binomial(n_norm, 0.5, size=200_000) / n_norm
    mc = np.mean(np.abs(est - 0.5) > eps)
    assert mc == pytest.approx(tri.binomial_failure(n_norm, eps), abs=0.003)
    assert mc == pytest.approx(delta, abs=0.02)


@settings(max_examples=40, deadline=None)
@given(eps=st.floats(0.005, 0.3), delta=st.floats(1e-6, 0.5), groups=st.integers(1, 1000))
def test_size_ordering_and_monotonicity(eps, delta, groups):
    h = tri.hoeffding_union_samples(eps, delta, groups)
    assert tri.normal_approx_samples(eps, delta, groups) <= h
    assert tri.hoeffding_union_samples(eps, delta, groups + 1) >= h
    assert tri.hoeffding_union_samples(eps / 2, delta, groups) >= 4 * h - 4 * groups


def test_context_bound_closed_form_and_growth():
    assert tri.context_bound_log10(0, EPS, DELTA) == pytest.approx(7.0)
    assert tri.context_bound_log10(30, EPS, DELTA, n=1e3) == pytest.approx(
        math.log10(2**30 / (EPS**2 * 1e3 * DELTA)))
    # d = c log2 n: bound / n^k = n^(c - 1 - k) grows iff c > k + 1
    for c, k, grows in [(3, 1, True), (2, 1, False), (1.5, 1, False), (4, 2, True)]:
        ratio = [tri.context_bound_log10(c * math.log2(n), EPS, DELTA, n=n) - k * math.log10(n)
                 for n in (1e3, 1e6, 1e9)]
        assert (ratio[2] > ratio[1] > ratio[0]) is grows


def test_coverage_samples_grow_like_d_2_to_the_d():
    sizes = [tri.coverage_samples(d, 0.1, 0.05) for d in range(1, 11)]
    slope = np.polyfit(range(1, 11), np.log2(sizes), 1)[0]
    assert 1.0 < slope < 1.25


@pytest.mark.parametrize("bad", [
    lambda: tri.hoeffding_union_samples(0, 0.1),
    lambda: tri.hoeffding_union_samples(1.5, 0.1),
    lambda: tri.hoeffding_union_samples(0.1, 1.0),
    lambda: tri.hoeffding_union_samples(0.1, 0.1, 0),
    lambda: tri.hoeffding_union_samples(0.1, 0.1, 2.5),
    lambda: tri.normal_approx_samples(0.1, 0.1, variance=0.3),
    lambda: tri.achievable_epsilon(0, 0.1),
    lambda: tri.context_bound_log10(-1, 0.1, 0.1),
    lambda: tri.coverage_samples(1.5, 0.1, 0.1),
])
def test_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_error_message_names_value():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\), got 2"):
        tri.hoeffding_union_samples(2, 0.1)
    with pytest.raises(ValueError, match="groups must be an integer >= 1, got 0"):
        tri.hoeffding_union_samples(0.1, 0.1, 0)


def test_sample_table_shapes():
    t = tri.sample_table(0.05, 0.01, [1, 10])
    assert set(t) == {"groups", "hoeffding_union", "exact_binomial", "normal_approx"}
    assert np.all(t["exact_binomial"] <= t["hoeffding_union"])
    assert stats.norm.isf(0.01 / 2) > 2.5  # sanity: the z used for delta = 0.01
