"""KL-regularised RL as Bayesian inference: the posterior, its normaliser, and the identities.

Korbak, Perez & Buckley (2022), "RL with KL penalties is better viewed as Bayesian inference"
(arXiv 2205.11275). Chapter 3 introduces this module. All functions work on discrete
distributions given as probability vectors (e.g. over an enumerated ``alignkit.toy`` space).

* ``posterior(pi0, r, beta)`` = ``pi0 * exp(r / beta) / Z``, the optimum of
  ``J_KLRL(pi) = E_pi[r] - beta * KL(pi || pi0)``; ``log_partition`` gives ``log Z``.
* ``klrl_objective`` and ``variational_form`` are the two sides of the identity
  ``J_KLRL(pi) = -beta * KL(pi || pi*) + beta * log Z``.
* ``elbo`` / ``log_evidence``: with likelihood ``p(O=1 | x) = exp(log_lik(x))`` the gap
  ``log p(O=1) - ELBO(q)`` is ``KL(q || posterior)``.
* ``filtering_posterior``, ``acceptance_rate``, ``rejection_sample``: conditioning ``pi0`` on an
  event ``b(x) = 1``, sampled exactly by rejection with acceptance rate ``Z``.
* ``mirror_descent``: a fast exact solver for the KL-regularised optimum.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from alignkit.theory.divergence import _as_array, _as_distribution, _as_int, _as_real, kl, tilt


def _check_beta(beta: float) -> float:
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer, np.floating)):
        raise TypeError(f"beta must be a finite number > 0, got {type(beta).__name__}: {beta!r:.80}")
    beta = float(beta)
    if not np.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r} "
                         "(beta = 0 is plain RL, which has no posterior)")
    return beta


def _check_reward(r, size: int, name: str = "r") -> np.ndarray:
    r = _as_array(r, name, ndim=None, nonempty=False, finite=False)
    if r.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) like the distribution, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name} must be finite, got {r}")
    return r


def posterior(pi0, r, beta: float) -> np.ndarray:
    """``pi*(x) = pi0(x) exp(r(x) / beta) / Z``: the target of KL-regularised RL (log space).

    It is the exponential tilt of chapter 4 with ``lam = 1 / beta``.
    """
    beta = _check_beta(beta)
    pi0 = _as_distribution(pi0, "pi0")
    return tilt(pi0, _check_reward(r, pi0.size), 1.0 / beta)


def log_partition(pi0, r, beta: float) -> float:
    """``log Z = log sum_x pi0(x) exp(r(x) / beta)``, computed with ``logsumexp``."""
    beta = _check_beta(beta)
    pi0 = _as_distribution(pi0, "pi0")
    r = _check_reward(r, pi0.size)
    support = pi0 > 0
    return float(logsumexp(np.log(pi0[support]) + r[support] / beta))


def klrl_objective(pi, pi0, r, beta: float) -> float:
    """``J_KLRL(pi) = E_pi[r] - beta * KL(pi || pi0)`` (reverse KL: expectation under ``pi``).

    ``beta = 0`` is allowed here and gives plain RL, ``J_RL = E_pi[r]``.
    """
    pi = _as_distribution(pi, "pi")
    pi0 = _as_distribution(pi0, "pi0")
    r = _check_reward(r, pi.size)
    if pi0.shape != pi.shape:
        raise ValueError(f"pi and pi0 must have the same shape, got {pi.shape} and {pi0.shape}")
    if _as_real(beta, "beta", low=0) == 0:
        return float(pi @ r)
    return float(pi @ r - _check_beta(beta) * kl(pi, pi0))


def variational_form(pi, pi0, r, beta: float) -> float:
    """``-beta * KL(pi || pi*) + beta * log Z``: the right-hand side of the chapter-3 identity.

    Equal to ``klrl_objective(pi, pi0, r, beta)`` for every ``pi``, so maximising ``J_KLRL`` is
    minimising ``KL(pi || pi*)``: variational inference, with maximum ``beta * log Z``.
    """
    beta = _check_beta(beta)
    pi = _as_distribution(pi, "pi")
    post = posterior(pi0, r, beta)
    if pi.shape != post.shape:
        raise ValueError(f"pi must have pi0's shape {post.shape}, got {pi.shape}")
    return float(-beta * kl(pi, post) + beta * log_partition(pi0, r, beta))


def klrl_reward(r, log_pi, log_pi0, beta: float) -> np.ndarray:
    """``r'(x) = r(x) + beta * (log pi0(x) - log pi(x))``: the policy-dependent reward of KL-RL.

    ``E_pi[r'] = J_KLRL(pi)``; its score-function gradient is what REINFORCE-with-KL follows.
    """
    beta = _as_real(beta, "beta", low=0)
    r = _as_array(r, "r", ndim=None)
    log_pi = _as_array(log_pi, "log_pi", ndim=None, allow_neg_inf=True)
    log_pi0 = _as_array(log_pi0, "log_pi0", ndim=None, allow_neg_inf=True)
    if not r.shape == log_pi.shape == log_pi0.shape:
        raise ValueError(f"r, log_pi and log_pi0 must have the same shape, got {r.shape}, {log_pi.shape}, "
                         f"{log_pi0.shape}")
    if np.any(log_pi > 1e-9) or np.any(log_pi0 > 1e-9):
        raise ValueError("log_pi and log_pi0 must be log-probabilities (<= 0)")
    return r + beta * (log_pi0 - log_pi)


def _check_log_likelihood(log_lik, size: int) -> np.ndarray:
    log_lik = _check_reward(log_lik, size, "log_lik")
    if np.any(log_lik > 1e-12):
        raise ValueError(f"log_lik must be <= 0 (a log-probability), got max {log_lik.max()!r}; "
                         "shift rewards by a constant (r - r.max()) first, which leaves the posterior unchanged")
    return log_lik


def log_evidence(prior, log_lik) -> float:
    """``log p(O=1) = log sum_x prior(x) p(O=1 | x)``, with ``log_lik(x) = log p(O=1 | x) <= 0``."""
    prior = _as_distribution(prior, "prior")
    log_lik = _check_log_likelihood(log_lik, prior.size)
    support = prior > 0
    return float(logsumexp(np.log(prior[support]) + log_lik[support]))


def elbo(q, prior, log_lik) -> float:
    """Evidence lower bound ``E_q[log p(O=1 | x)] - KL(q || prior) <= log p(O=1)``.

    With ``log_lik = (r - r.max()) / beta`` it is ``J_KLRL(q) / beta`` up to that constant shift;
    the gap to ``log_evidence`` is exactly ``KL(q || posterior)``.
    """
    q = _as_distribution(q, "q")
    prior = _as_distribution(prior, "prior")
    if prior.shape != q.shape:
        raise ValueError(f"q and prior must have the same shape, got {q.shape} and {prior.shape}")
    log_lik = _check_log_likelihood(log_lik, q.size)
    return float(q @ log_lik - kl(q, prior))


def _check_event(b, size: int) -> np.ndarray:
    if b is None or isinstance(b, (str, bytes, dict)) or np.asarray(b).dtype.kind not in "biuf":
        raise TypeError(f"event b must be an array of 0/1 or bools, got {type(b).__name__}: {b!r:.80}")
    b = np.asarray(b)
    if b.shape != (size,):
        raise ValueError(f"event b must have shape ({size},), got {b.shape}")
    if not np.all((b == 0) | (b == 1)):
        raise ValueError(f"event b must be binary (0/1 or bool), got values {np.unique(b)}")
    return b.astype(bool)


def acceptance_rate(pi0, b) -> float:
    """``Z = P_pi0(b(x) = 1)``: the normaliser of the filtering posterior, and rejection's acceptance rate."""
    pi0 = _as_distribution(pi0, "pi0")
    return float(pi0[_check_event(b, pi0.size)].sum())


def filtering_posterior(pi0, b) -> np.ndarray:
    """``pi0(x | b(x) = 1) = pi0(x) b(x) / Z``: the prior conditioned on an event.

    It is the ``beta -> 0`` limit of ``posterior`` with a binary reward ``r = b``.
    """
    pi0 = _as_distribution(pi0, "pi0")
    b = _check_event(b, pi0.size)
    z = float(pi0[b].sum())
    if z <= 0:
        raise ValueError("the event b has probability 0 under pi0; the filtering posterior is undefined")
    return np.where(b, pi0, 0.0) / z


def rejection_sample(pi0, b, n_proposals: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Draw ``n_proposals`` indices from ``pi0`` and keep those with ``b = 1``.

    Returns ``(accepted indices, acceptance rate)``. The accepted ones are exact samples from
    ``filtering_posterior(pi0, b)``; the acceptance rate estimates ``Z``.
    """
    pi0 = _as_distribution(pi0, "pi0")
    b = _check_event(b, pi0.size)
    if isinstance(n_proposals, bool) or not isinstance(n_proposals, int | np.integer) or n_proposals < 1:
        raise ValueError(f"n_proposals must be a positive int, got {n_proposals!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    proposals = rng.choice(pi0.size, size=n_proposals, p=pi0)
    kept = proposals[b[proposals]]
    return kept, len(kept) / n_proposals


def mirror_descent(pi0, r, beta: float, eta: float, steps: int, init=None) -> list[np.ndarray]:
    """Exact mirror ascent on ``J_KLRL``: ``pi <- pi^(1 - eta*beta) * pi0^(eta*beta) * exp(eta*r)``.

    The log-space error to ``pi*`` shrinks by ``|1 - eta*beta|`` per step, so it converges
    geometrically for ``0 < eta*beta < 2`` (``eta*beta = 1`` lands on ``pi*`` in one step).
    Returns the iterates ``[pi_0, ..., pi_steps]`` (``init`` defaults to uniform).
    """
    beta = _check_beta(beta)
    pi0 = _as_distribution(pi0, "pi0")
    r = _check_reward(r, pi0.size)
    eta = _as_real(eta, "eta", low=0, low_open=True)
    steps = _as_int(steps, "steps", low=0)
    if not 0 < eta * beta < 2:
        raise ValueError(f"eta * beta must be in (0, 2) to converge, got {eta * beta!r}")
    if np.any(pi0 == 0):
        raise ValueError("mirror_descent needs pi0 > 0 everywhere")
    pi = np.full(pi0.size, 1.0 / pi0.size) if init is None else _as_distribution(init, "init")
    if pi.shape != pi0.shape or np.any(pi == 0):
        raise ValueError(f"init must be a distribution of pi0's shape {pi0.shape} with init > 0 everywhere")
    log_pi, log_pi0 = np.log(pi), np.log(pi0)
    iterates = [pi]
    for _ in range(steps):
        log_pi = (1 - eta * beta) * log_pi + eta * beta * log_pi0 + eta * r
        log_pi = log_pi - logsumexp(log_pi)
        iterates.append(np.exp(log_pi))
    return iterates


def beta_sweep(pi0, r, betas) -> dict[str, np.ndarray]:
    """Exact properties of ``pi*_beta`` for each beta: expected reward, KL to pi0, entropy, log Z.

    The reward-vs-KL pairs trace the optimal frontier; ``KL(pi*||pi0) = E[r]/beta - log Z``.
    """
    pi0 = _as_distribution(pi0, "pi0")
    betas = _as_array(betas, "betas")
    if np.any(betas <= 0):
        raise ValueError(f"betas must all be > 0, got {betas}")
    r = _check_reward(r, pi0.size)
    rows = []
    for beta in betas.tolist():
        post = posterior(pi0, r, beta)
        nz = post[post > 0]
        rows.append((beta, post @ np.asarray(r, float), kl(post, pi0), float(-(nz * np.log(nz)).sum()),
                     log_partition(pi0, r, beta)))
    cols = np.array(rows, dtype=float).T
    return dict(zip(["beta", "reward", "kl_prior", "entropy", "log_z"], cols, strict=True))
