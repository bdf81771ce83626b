"""The KL-constrained optimum of expected reward, in closed form: an exponential tilt.

For a reference ``p`` and reward ``r`` on a finite set, the tilted family
``phi_lam = p * exp(lam * r) / Z(lam)`` has cumulant generating function
``Lambda(lam) = log E_p exp(lam * r)``, mean reward ``Lambda'(lam)`` and
``KL(phi_lam || p) = lam * Lambda'(lam) - Lambda(lam)``. The policy maximising ``E_phi r`` subject
to ``KL(phi || p) <= delta`` is the tilt whose KL equals ``delta`` (Gibbs variational inequality),
or ``p`` restricted to the argmax set once ``delta >= -log p(argmax)``.
Chapter 4 introduces it; chapter 3 reuses it (the KL-regularised optimum is ``tilt(p, r, 1/beta)``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

from alignkit.theory.divergence import (
    _as_array,
    _as_distribution,
    _as_lam,
    _as_real,
    _checked,
    tilt,
)


def cgf(p, r, lam) -> np.ndarray | float:
    """``Lambda(lam) = log E_p exp(lam * r)``, the cumulant generating function of ``r`` under ``p``.

    ``lam`` may be a scalar or an array (vectorised). Chapter 4 introduces it.
    """
    p, r = _checked(p, r)
    lam_arr = _as_array(lam, "lam", ndim=None, nonempty=False)
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    out = logsumexp(logp[None, :] + lam_arr.reshape(-1, 1) * r[None, :], axis=1)
    return float(out[0]) if lam_arr.ndim == 0 else out.reshape(lam_arr.shape)


def tilted_mean(p, r, lam: float) -> float:
    """``Lambda'(lam) = E_{phi_lam} r``, the expected reward under the tilt (``lam = inf`` allowed)."""
    p, r = _checked(p, r)
    return float(np.dot(tilt(p, r, lam), r))


def tilted_variance(p, r, lam: float) -> float:
    """``Lambda''(lam) = Var_{phi_lam} r``, the variance of the reward under the tilt."""
    p, r = _checked(p, r)
    phi = tilt(p, r, lam)
    mean = np.dot(phi, r)
    return float(np.dot(phi, (r - mean) ** 2))


def max_kl(p, r) -> float:
    """``-log p(argmax set)``: the largest KL a tilt can reach (the KL of ``lam = inf``)."""
    p, r = _checked(p, r)
    support = p > 0
    top = r[support].max()
    return float(-np.log(p[support & (r == top)].sum()))


def tilt_kl(p, r, lam: float) -> float:
    """``D(lam) = KL(phi_lam || p) = lam * Lambda'(lam) - Lambda(lam)``, without cancellation.

    Written relative to the top reward so that large ``lam`` does not subtract two huge numbers.
    """
    p, r = _checked(p, r)
    lam = _as_lam(lam)
    if np.isinf(lam) and lam > 0:
        return max_kl(p, r)
    if lam == 0:
        return 0.0
    support = p > 0
    # shift by the reward the tilt moves towards, so both terms stay of order one
    shift = r[support].max() if lam > 0 else r[support].min()
    centred = r - shift
    phi = tilt(p, r, lam)
    with np.errstate(divide="ignore"):
        log_z = logsumexp(np.log(p) + lam * centred)
    return float(max(lam * np.dot(phi, centred) - log_z, 0.0))


def kl_constrained_optimum(p, r, delta: float) -> tuple[np.ndarray, float]:
    """The policy maximising ``E_phi r`` subject to ``KL(phi || p) <= delta``, and its ``lam``.

    Returns ``(phi, lam)`` with ``phi = tilt(p, r, lam)`` and ``KL(phi || p) = delta`` when
    ``0 < delta < -log p(argmax)``; when ``delta`` reaches ``-log p(argmax)`` the answer is ``p``
    restricted to the argmax set and ``lam = inf``. ``delta = 0`` gives ``(p, 0.0)``.
    Chapter 4 introduces it.
    """
    p, r = _checked(p, r)
    try:
        delta = _as_real(delta, "delta", low=0)
    except ValueError:
        raise ValueError(f"delta must be a finite KL budget >= 0 (nats), got {delta!r}") from None
    ceiling = max_kl(p, r)
    if delta >= ceiling:
        return tilt(p, r, np.inf), float("inf")
    if delta == 0:
        return p.copy(), 0.0
    hi = 1.0
    while tilt_kl(p, r, hi) < delta:  # D is increasing; double until the root is bracketed
        hi *= 2.0
    lam = brentq(lambda t: tilt_kl(p, r, t) - delta, 0.0, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
    return tilt(p, r, lam), float(lam)


def kl_to_tilt_identity(phi, p, r, lam: float) -> float:
    """``KL(phi || p) - KL(phi_lam || p) - lam * (E_phi r - E_{phi_lam} r)``, which equals
    ``KL(phi || phi_lam)`` exactly (claim 2: a policy with a comparable KL-reward trade-off is
    close to the tilt in KL). Chapter 4 introduces it to check the identity numerically.
    """
    from alignkit.theory.divergence import kl

    p, r = _checked(p, r)
    phi = _as_distribution(phi, "phi")
    lam = _as_real(lam, "lam")  # finite: at lam = inf the identity reads inf * 0
    target = tilt(p, r, lam)
    return kl(phi, p) - kl(target, p) - lam * (np.dot(phi, r) - np.dot(target, r))
