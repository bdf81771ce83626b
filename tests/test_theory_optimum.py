"""Chapter 4: the KL-constrained optimum and the tilted family, against independent computations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from alignkit.theory import (
    cgf,
    kl,
    kl_constrained_optimum,
    kl_to_tilt_identity,
    max_kl,
    tilt,
    tilt_kl,
    tilted_mean,
)


def random_problem(seed: int, k: int):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k)), rng.normal(size=k)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 8), lam=st.floats(-5, 5))
def test_tilt_mean_and_kl_are_cgf_derivatives(seed, k, lam):
    """E_tilt[r] = Lambda'(lam) and KL = lam Lambda'(lam) - Lambda(lam), Lambda' by finite differences."""
    p, r = random_problem(seed, k)
    h = 1e-5
    derivative = (cgf(p, r, lam + h) - cgf(p, r, lam - h)) / (2 * h)
    phi = tilt(p, r, lam)
    assert phi @ r == pytest.approx(derivative, abs=1e-7)
    assert tilted_mean(p, r, lam) == pytest.approx(derivative, abs=1e-7)
    assert kl(phi, p) == pytest.approx(lam * derivative - cgf(p, r, lam), abs=1e-6)
    assert tilt_kl(p, r, lam) == pytest.approx(kl(phi, p), abs=1e-10)


def slsqp_optimum(p, r, delta):
    """The constrained problem solved generically: maximise E_phi r s.t. KL(phi||p) <= delta."""
    cons = [{"type": "eq", "fun": lambda x: x.sum() - 1},
            {"type": "ineq", "fun": lambda x: delta - np.sum(x * np.log(np.maximum(x, 1e-300) / p))}]
    res = minimize(lambda x: -(x @ r), p.copy(), method="SLSQP", bounds=[(0, 1)] * p.size,
                   constraints=cons, options={"ftol": 1e-12, "maxiter": 500})
    return res.x


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), frac=st.floats(0.05, 0.9))
def test_optimum_matches_slsqp(seed, k, frac):
    """B1: the closed form reaches the same expected reward as SLSQP (and SLSQP never beats it)."""
    p, r = random_problem(seed, k)
    delta = frac * max_kl(p, r)
    phi, lam = kl_constrained_optimum(p, r, delta)
    assert kl(phi, p) == pytest.approx(delta, abs=1e-9)
    generic = slsqp_optimum(p, r, delta)
    assert phi @ r == pytest.approx(generic @ r, abs=1e-6)
    assert generic @ r <= phi @ r + 1e-6


def test_saturated_budget_gives_argmax_restriction():
    p = np.array([0.5, 0.2, 0.2, 0.1])
    r = np.array([0.0, 1.0, 1.0, -1.0])
    phi, lam = kl_constrained_optimum(p, r, -np.log(0.4) + 0.1)
    assert lam == np.inf
    np.testing.assert_allclose(phi, [0, 0.5, 0.5, 0])
    phi0, lam0 = kl_constrained_optimum(p, r, 0.0)
    assert lam0 == 0.0 and np.allclose(phi0, p)
    _, lam_big = kl_constrained_optimum(p, r, -np.log(0.4) - 1e-9)
    assert 10 < lam_big < np.inf


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 8), lam=st.floats(-3, 3))
def test_kl_identity(seed, k, lam):
    """B2: KL(phi||phi_lam) = KL(phi||p) - KL(phi_lam||p) - lam (E_phi r - E_phi_lam r)."""
    p, r = random_problem(seed, k)
    phi = np.random.default_rng(seed + 1).dirichlet(np.ones(k))
    assert kl_to_tilt_identity(phi, p, r, lam) == pytest.approx(kl(phi, tilt(p, r, lam)), abs=1e-12)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="delta"):
        kl_constrained_optimum([0.5, 0.5], [0, 1], -0.1)
    with pytest.raises(ValueError, match="sum to 1"):
        kl_constrained_optimum([0.5, 0.6], [0, 1], 0.1)
    with pytest.raises(ValueError, match="shape"):
        kl_constrained_optimum([0.5, 0.5], [0, 1, 2], 0.1)
