"""Sample-complexity calculators for the RLHF trilemma: representativeness, context coverage.

Chapter 5 introduces this module. The paper (Sahoo et al., arXiv 2511.19504) states in its
abstract that epsilon <= 0.01 and delta <= 0.001 need 10^7-10^8 samples "for true global
representation" and Omega(2^d_context) operations, while practice collects 10^3-10^4. Beyond
the abstract the paper's formal content is unverified, so these functions are *one
formalisation*: each docstring states its assumptions, and the chapter checks every number
against an independent computation (closed form, exact binomial or Monte Carlo).

Conventions. A "group" is one annotator stratum whose preference rate (a number in [0, 1],
e.g. the probability that its members prefer response A) we must estimate to within
``epsilon``. "Representative" means *every* group's rate is within ``epsilon`` at once, with
probability at least ``1 - delta``; samples are split equally between the groups.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from alignkit.theory.divergence import _as_int, _as_real

_UNCHECKED = object()


def _check(epsilon=_UNCHECKED, delta=_UNCHECKED, groups=_UNCHECKED) -> None:
    """Raise ``ValueError`` (``TypeError`` for a non-number) naming the bad argument and the accepted range.

    Only the arguments passed are checked (None is checked, and refused, like any other value).
    """
    for name, value in (("epsilon", epsilon), ("delta", delta)):
        if value is not _UNCHECKED:
            try:
                _as_real(value, name, low=0, high=1, low_open=True, high_open=True)
            except ValueError:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}") from None
    if groups is not _UNCHECKED:
        try:
            _as_int(groups, "groups", low=1)
        except ValueError:
            raise ValueError(f"groups must be an integer >= 1, got {groups!r}") from None


def _check_samples(samples) -> float:
    return _as_real(samples, "samples", low=0, low_open=True)


def hoeffding_union_samples(epsilon: float, delta: float, groups: int = 1) -> int:
    """Total samples so that all ``groups`` rates are within ``epsilon`` w.p. >= ``1 - delta``.

    Hoeffding for one group of ``n`` samples in [0, 1]: P(|mean - p| > eps) <= 2 exp(-2 n eps^2).
    A union bound over G groups asks each for failure <= delta / G, so n = ln(2G/delta) / (2 eps^2)
    per group and ``G * ceil(n)`` in total. Assumptions: independent samples, bounded in [0, 1],
    equal allocation. A *sufficient* size (an upper bound on what is needed), valid for every p.
    """
    _check(epsilon, delta, groups)
    per_group = math.log(2 * groups / delta) / (2 * epsilon**2)
    return int(groups * math.ceil(per_group - 1e-9))


def normal_approx_samples(epsilon: float, delta: float, groups: int = 1, variance: float = 0.25) -> int:
    """The same target by the central limit theorem: ``G * ceil(z^2 variance / eps^2)``.

    ``z`` is the standard normal quantile at ``1 - delta / (2G)`` (two-sided, union over groups);
    ``variance = 1/4`` is the worst case for a rate. Tighter than Hoeffding (about 0.7-0.85 of
    it at these deltas) but an asymptotic approximation, not a guarantee.
    """
    _check(epsilon, delta, groups)
    variance = _as_real(variance, "variance")
    if not (0 < variance <= 0.25):
        raise ValueError(f"variance of a [0, 1] label must be in (0, 0.25], got {variance!r}")
    z = stats.norm.isf(delta / (2 * groups))
    return int(groups * math.ceil(z**2 * variance / epsilon**2 - 1e-9))


def binomial_failure(n: int, epsilon: float, p: float = 0.5) -> float:
    """Exact P(|k/n - p| > epsilon) for k ~ Binomial(n, p): the failure rate of one group."""
    n = _as_int(n, "n", low=1)
    _check(epsilon)
    p = _as_real(p, "p", low=0, high=1)
    lo = math.ceil(n * (p - epsilon)) - 1  # k <= lo means k/n < p - eps
    hi = math.floor(n * (p + epsilon)) + 1  # k >= hi means k/n > p + eps
    tail_lo = stats.binom.cdf(lo, n, p) if lo >= 0 else 0.0
    tail_hi = stats.binom.sf(hi - 1, n, p) if hi <= n else 0.0
    return float(tail_lo + tail_hi)


def exact_binomial_samples(epsilon: float, delta: float, groups: int = 1, p: float = 0.5) -> int:
    """Smallest per-group ``n`` whose *exact* binomial failure is <= delta / G, times G.

    The tighter alternative that is still exact: no Hoeffding slack, only the union bound.
    Assumption: the rate is ``p`` (default 1/2, the worst-case variance; discreteness can make
    nearby rates very slightly worse). Found by bisection on ``binomial_failure``; the failure
    is not perfectly monotone in ``n`` (lattice effects), so this is the first ``n`` of the
    monotone envelope searched from Hoeffding's size downwards.
    """
    _check(epsilon, delta, groups)
    p = _as_real(p, "p", low=0, high=1)
    target = delta / groups
    hi = max(1, hoeffding_union_samples(epsilon, delta, groups) // groups)
    lo = 1
    while lo < hi:  # bisection; binomial_failure decreases in n up to lattice wiggles
        mid = (lo + hi) // 2
        if binomial_failure(mid, epsilon, p) <= target:
            hi = mid
        else:
            lo = mid + 1
    return int(groups * lo)


def achievable_epsilon(samples: float, delta: float, groups: int = 1) -> float:
    """The epsilon Hoeffding + union guarantees with ``samples`` in total: sqrt(G ln(2G/delta) / (2m))."""
    _check(delta=delta, groups=groups)
    samples = _check_samples(samples)
    return math.sqrt(groups * math.log(2 * groups / delta) / (2 * samples))


def groups_supported(samples: float, epsilon: float, delta: float) -> int:
    """The most groups G whose Hoeffding + union requirement fits in ``samples`` (0 if none)."""
    _check(epsilon, delta)
    samples = _as_real(samples, "samples", low=0)
    if hoeffding_union_samples(epsilon, delta, 1) > samples:
        return 0
    lo, hi = 1, 2
    while hoeffding_union_samples(epsilon, delta, hi) <= samples:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if hoeffding_union_samples(epsilon, delta, mid) <= samples:
            lo = mid
        else:
            hi = mid
    return lo


def context_bound_log10(d: float, epsilon: float, delta: float, n: float = 1.0, kappa: float = 1.0) -> float:
    """log10 of kappa 2^d / (eps^2 n delta), the lower bound as a secondary summary reports it.

    Unverified: the bound's form comes from one secondary summary, where kappa and n are not
    defined (n is plausibly the population size). Worst case: 2^d counts arbitrary independent
    preferences per binary context; structured preferences need far fewer samples. Returned in
    log10 so that d in the hundreds does not overflow.
    """
    _check(epsilon, delta)
    d = _as_real(d, "d", low=0)
    n = _as_real(n, "n", low=0, low_open=True)
    kappa = _as_real(kappa, "kappa", low=0, low_open=True)
    return d * math.log10(2) + math.log10(kappa) - 2 * math.log10(epsilon) - math.log10(n) - math.log10(delta)


def coverage_samples(d: int, epsilon: float, delta: float) -> int:
    """Hoeffding + union samples to learn an arbitrary preference rate in each of 2^d contexts.

    The coverage cost of context: with no structure each binary context is its own group, so
    the cost is ``hoeffding_union_samples(eps, delta, 2**d)``, which grows like d 2^d.
    """
    d = _as_int(d, "d", low=0)
    return hoeffding_union_samples(epsilon, delta, 2 ** int(d))


def headline_numbers(epsilon: float = 0.01, delta: float = 0.001) -> dict[str, float]:
    """The abstract's numbers recomputed under the assumptions of this module.

    Returns ``inverse_eps2_delta`` (1 / (eps^2 delta), the bound with 2^d kappa / n set aside),
    the Hoeffding + union sizes for 1 group, the largest G that 10^7 and 10^8 samples support,
    the epsilon that 10^3 and 10^4 samples guarantee for one group, and the context dimension d
    at which halving d saves 10^9 x (2^(d/2) = 10^9).
    """
    _check(epsilon, delta)
    return {
        "inverse_eps2_delta": 1 / (epsilon**2 * delta),
        "samples_one_group": hoeffding_union_samples(epsilon, delta, 1),
        "groups_at_1e7": groups_supported(1e7, epsilon, delta),
        "groups_at_1e8": groups_supported(1e8, epsilon, delta),
        "epsilon_at_1e3": achievable_epsilon(1e3, delta),
        "epsilon_at_1e4": achievable_epsilon(1e4, delta),
        "d_for_1e9_saving": 2 * math.log2(1e9),
    }


def sample_table(epsilon: float, delta: float, groups) -> dict[str, np.ndarray]:
    """Hoeffding + union, exact binomial and normal-approximation sizes for each G in ``groups``."""
    _check(epsilon, delta)
    if isinstance(groups, (str, bytes, dict)) or not hasattr(groups, "__iter__"):
        raise TypeError(f"groups must be a list of group counts, got {type(groups).__name__}: {groups!r:.80}")
    groups = list(groups)
    if not groups:
        raise ValueError("groups must be a non-empty list of group counts")
    for g in groups:
        _check(groups=g)
    groups = [int(g) for g in groups]
    return {
        "groups": np.array(groups),
        "hoeffding_union": np.array([hoeffding_union_samples(epsilon, delta, g) for g in groups]),
        "exact_binomial": np.array([exact_binomial_samples(epsilon, delta, g) for g in groups]),
        "normal_approx": np.array([normal_approx_samples(epsilon, delta, g) for g in groups]),
    }
