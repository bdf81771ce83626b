"""Chapter 3's Bayesian view of KL-regularised RL, checked against brute-force enumeration."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from alignkit.theory.bayes import (
    acceptance_rate,
    beta_sweep,
    elbo,
    filtering_posterior,
    klrl_objective,
    klrl_reward,
    log_evidence,
    log_partition,
    mirror_descent,
    posterior,
    rejection_sample,
    variational_form,
)
from alignkit.theory.divergence import kl
from alignkit.toy import entropy


def random_dist(rng, n):
    return rng.dirichlet(np.ones(n))


def test_posterior_by_brute_force(toy_a):
    _, p0, r = toy_a
    for beta in (0.3, 1.0, 3.0):
        unnorm = np.array([p0[i] * np.exp(r[i] / beta) for i in range(len(p0))])
        np.testing.assert_allclose(posterior(p0, r, beta), unnorm / unnorm.sum(), rtol=1e-12)
        assert log_partition(p0, r, beta) == pytest.approx(np.log(unnorm.sum()), abs=1e-12)


def test_posterior_maximises_klrl_objective(toy_a):
    """A generic optimiser over the simplex finds the same maximum, beta log Z, at the posterior."""
    _, p0, r = toy_a
    beta = 1.0

    def neg_j(logits):
        pi = np.exp(logits - logits.max())
        return -klrl_objective(pi / pi.sum(), p0, r, beta)

    best = minimize(neg_j, np.zeros(len(p0)), method="L-BFGS-B")
    assert -best.fun == pytest.approx(beta * log_partition(p0, r, beta), abs=1e-6)
    assert klrl_objective(posterior(p0, r, beta), p0, r, beta) == pytest.approx(-best.fun, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 30), beta=st.floats(0.05, 20.0))
def test_identity_holds_for_any_policy(seed, n, beta):
    rng = np.random.default_rng(seed)
    pi, p0 = random_dist(rng, n), random_dist(rng, n)
    r = rng.normal(size=n) * 3
    assert klrl_objective(pi, p0, r, beta) == pytest.approx(variational_form(pi, p0, r, beta),
                                                            abs=1e-9 * max(1.0, beta))


def test_klrl_reward_has_expectation_j(toy_a):
    _, p0, r = toy_a
    pi = random_dist(np.random.default_rng(3), len(p0))
    rprime = klrl_reward(r, np.log(pi), np.log(p0), 2.0)
    assert pi @ rprime == pytest.approx(klrl_objective(pi, p0, r, 2.0), abs=1e-12)


def test_elbo_gap_is_kl_to_posterior(toy_a):
    space, p0, _ = toy_a
    r = -0.5 * (1 + (space.sequences == 1).sum(1))  # r <= 0: exp(r) is a likelihood
    post = posterior(p0, r, 1.0)
    for q in (p0, np.full(len(p0), 1 / len(p0)), post):
        gap = log_evidence(p0, r) - elbo(q, p0, r)
        assert gap == pytest.approx(kl(q, post), abs=1e-12)
    assert log_evidence(p0, r) - elbo(post, p0, r) == pytest.approx(0.0, abs=1e-12)


def test_elbo_rejects_positive_log_likelihood(toy_a):
    _, p0, r = toy_a
    with pytest.raises(ValueError, match="<= 0"):
        elbo(p0, p0, r + 1.0)


def test_filtering_and_rejection_sampling(toy_a):
    space, p0, _ = toy_a
    b = (space.sequences != 2).all(1)  # "never emits token 2"
    z = acceptance_rate(p0, b)
    target = filtering_posterior(p0, b)
    assert z == pytest.approx(p0[b].sum())
    assert kl(target, p0) == pytest.approx(-np.log(z), abs=1e-12)
    kept, rate = rejection_sample(p0, b, 100_000, np.random.default_rng(0))
    sigma = np.sqrt(z * (1 - z) / 100_000)
    assert abs(rate - z) < 4 * sigma
    freq = np.bincount(kept, minlength=len(p0)) / len(kept)
    assert 0.5 * np.abs(freq - target).sum() < 0.03


def test_small_beta_tends_to_filtering_posterior(toy_a):
    space, p0, _ = toy_a
    b = (space.sequences != 2).all(1).astype(float)
    target = filtering_posterior(p0, b)
    gaps = [kl(target, posterior(p0, b, beta)) for beta in (1.0, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-10


def test_beta_sweep_is_monotone_and_consistent(toy_a):
    _, p0, r = toy_a
    sweep = beta_sweep(p0, r, [0.3, 1.0, 3.0, 10.0])
    assert np.all(np.diff(sweep["reward"]) < 0) and np.all(np.diff(sweep["kl_prior"]) < 0)
    np.testing.assert_allclose(sweep["kl_prior"], sweep["reward"] / sweep["beta"] - sweep["log_z"],
                               atol=1e-12)
    assert sweep["entropy"][-1] == pytest.approx(entropy(posterior(p0, r, 10.0)))


def test_mirror_descent_converges_geometrically(toy_a):
    _, p0, r = toy_a
    post = posterior(p0, r, 0.3)
    one = mirror_descent(p0, r, 0.3, eta=1 / 0.3, steps=1)
    np.testing.assert_allclose(one[-1], post, atol=1e-12)
    its = mirror_descent(p0, r, 0.3, eta=1.0, steps=60)
    assert kl(its[-1], post) < 1e-12


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_beta_is_rejected(toy_a, beta):
    _, p0, r = toy_a
    with pytest.raises(ValueError, match="beta"):
        posterior(p0, r, beta)


def test_bad_event_and_shapes_are_rejected(toy_a):
    _, p0, r = toy_a
    with pytest.raises(ValueError, match="binary"):
        filtering_posterior(p0, np.full(len(p0), 0.5))
    with pytest.raises(ValueError, match="probability 0"):
        filtering_posterior(p0, np.zeros(len(p0)))
    with pytest.raises(ValueError, match="shape"):
        posterior(p0, r[:5], 1.0)
