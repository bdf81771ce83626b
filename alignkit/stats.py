"""Intervals for numbers measured over seeds or samples: the ledgers report these, never bare means.

Used by every chapter's claims ledger; the paired, cluster-resampling bootstrap is introduced by
chapter 1's agreement study (pairs of responses to one prompt are not independent).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval ``(mean, lo, hi)`` over seeds; a single value gives (v, nan, nan).

    For unbounded quantities summarised over seeds. Not for a ledger's rate or a difference of
    rates over a few seeds (the interval can leave [0, 1]): use :func:`wilson_ci` or
    :func:`seeds_units_bootstrap` there.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value, got none")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def bootstrap_ci(values, statistic=np.mean, *, confidence: float = 0.95, n_boot: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap ``(estimate, lo, hi)`` of ``statistic`` over the rows of ``values``."""
    x = np.asarray(values)
    if len(x) == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = np.array([statistic(x[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return float(statistic(x)), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Proportion and Wilson score interval ``(p, lo, hi)`` for ``successes`` out of ``n``.

    The interval for one proportion that the ledgers use: it stays inside [0, 1] and keeps its
    coverage near 0 and 1, where a normal (Wald) interval collapses.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not isinstance(successes, (int, np.integer)) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an int in [0, n={n}], got {successes!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    z = float(_st.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 (k = n) the lower (upper) end is exactly 0 (1); in floating point centre - half
    # can land a rounding error beside it (1.4e-17 at n = 3), on the wrong side of p.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return p, float(min(lo, p)), float(max(hi, p))


def seeds_units_bootstrap(values, other=None, *, level: float = 0.95, n_boot: int = 2000,
                          seed: int = 0) -> tuple[float, float, float]:
    """Mean (or paired mean difference with ``other``) over a ``(seeds, units)`` array, with a
    percentile interval that resamples seeds and units (prompts, problems) both.

    ``values[s, u]`` is one run's score on one held-out unit, e.g. verifier pass (0/1) of seed s
    on prompt u. With ``other`` (same shape: another method on the same seeds and units) the
    statistic is ``mean(values - other)``, paired by seed and unit. One seed reduces to a
    bootstrap over units. The interval stays in the range of the per-unit values (a rate stays in
    [0, 1], a difference of rates in [-1, 1]), unlike a t-interval over a few seeds.
    """
    x = np.asarray(values, dtype=float)
    if other is not None:
        y = np.asarray(other, dtype=float)
        if y.shape != x.shape:
            raise ValueError(f"values and other must have the same (seeds, units) shape, got {x.shape}, {y.shape}")
        x = x - y
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"values must be a non-empty (seeds, units) array, got shape {np.shape(values)}")
    if not np.isfinite(x).all():
        raise ValueError("values contain NaN or inf")
    rng = np.random.default_rng(seed)
    n_seeds, n_units = x.shape
    boots = np.empty(n_boot)
    for b in range(n_boot):
        s = rng.integers(0, n_seeds, n_seeds)
        u = rng.integers(0, n_units, n_units)
        boots[b] = x[np.ix_(s, u)].mean()
    alpha = (1 - level) / 2
    return float(x.mean()), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def fmt_ci(mean: float, lo: float = float("nan"), hi: float = float("nan"), digits: int = 3) -> str:
    """``'0.412 [0.371, 0.455]'``, or just the mean when there is no interval."""
    if np.isnan(lo) or np.isnan(hi):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def paired_bootstrap(correct: dict[str, np.ndarray], *, n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95, clusters=None) -> dict[str, tuple[float, float, float]]:
    """Percentile bootstrap ``(mean, lo, hi)`` of each metric's agreement, resampling the *same*
    pairs for every metric (so differences between metrics get a paired interval too).

    ``correct[name]`` holds per-pair agreement (0, 0.5 or 1). With ``clusters`` (e.g. the prompt
    of each pair) whole clusters are resampled, since pairs from one prompt are not independent.
    The result also keeps the bootstrap draws (``"_boots"``, ``"_names"``) for :func:`bootstrap_diff`.
    """
    names = list(correct)
    if not names:
        raise ValueError("correct is empty: pass one array of per-pair agreement per metric")
    mat = np.stack([np.asarray(correct[n], dtype=float) for n in names])
    n = mat.shape[1]
    if n == 0:
        raise ValueError("no pairs to bootstrap")
    rng = np.random.default_rng(seed)
    if clusters is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = np.stack([mat[:, i].mean(1) for i in idx])
    else:
        groups = _cluster_index(clusters, n)
        picks = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        boots = np.stack([mat[:, np.concatenate([groups[g] for g in p])].mean(1) for p in picks])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)
    out = {name: (float(mat[k].mean()), float(lo[k]), float(hi[k])) for k, name in enumerate(names)}
    out["_boots"] = boots  # (n_boot, metrics): for paired differences, see bootstrap_diff
    out["_names"] = names
    return out



def _cluster_index(clusters, n: int) -> list[np.ndarray]:
    """Indices of the pairs in each cluster (clusters given as one label per pair)."""
    labels = list(clusters)
    if len(labels) != n:
        raise ValueError(f"clusters must give one label per pair ({n}), got {len(labels)}")
    groups: dict = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    return [np.array(v) for v in groups.values()]



def bootstrap_diff(boot: dict, a: str, b: str, confidence: float = 0.95) -> tuple[float, float, float]:
    """Paired difference ``agreement(a) - agreement(b)`` with its bootstrap interval."""
    names = boot["_names"]
    for name in (a, b):
        if name not in names:
            raise ValueError(f"unknown metric {name!r}; bootstrapped: {names}")
    d = boot["_boots"][:, names.index(a)] - boot["_boots"][:, names.index(b)]
    alpha = (1 - confidence) / 2
    return boot[a][0] - boot[b][0], float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))


def design_power(pilot, n_units: int, *, n_seeds: int | None = None, level: float = 0.95,
                 power: float = 0.8) -> dict:
    """What a planned paired design can decide, projected from a pilot's differences.

    ``pilot[s, u]`` is the pilot's paired difference (method A minus B) of seed s on unit u
    (held-out prompt or problem). The planned estimate is the mean over ``n_units`` units and
    ``n_seeds`` seeds (default: the pilot's). The pilot is read as ``d[s, u] = mu + a_u + b_s + e_su``
    with three variance components: between units (``sd_units``: the spread of the units' true
    differences), between seeds (``sd_seeds``: a whole run landing higher or lower on every unit)
    and the noise of one seed on one unit (``sd_noise``). The projected variance is
    ``var_units / n_units + var_seeds / n_seeds + var_noise / (n_units * n_seeds)``: more units
    shrink the first and third part, only more seeds shrink the second. Returns the projected
    ``se``, the 95% ``half_width`` (normal approximation) and the minimum detectable effect ``mde``
    at ``power`` for a two-sided test at ``level``: (z_(1-alpha/2) + z_power) * se; and
    ``sd_within`` (seed-to-seed spread on one unit: seed and noise parts together).

    With 2 pilot seeds the seed part rests on one degree of freedom: two seeds that happen to agree
    project it as 0 (chapter 1's second pilot did; its final run then found it). Chapters 1 and 2
    size their cpu experiments with it.
    """
    d = np.asarray(pilot, dtype=float)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[1] < 2 or not np.isfinite(d).all():
        raise ValueError(f"pilot must be a finite (seeds, units) array with >= 2 units, got shape {np.shape(pilot)}")
    if n_units < 1 or (n_seeds is not None and n_seeds < 1):
        raise ValueError(f"n_units and n_seeds must be >= 1, got {n_units}, {n_seeds}")
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError(f"level and power must be in (0, 1), got {level}, {power}")
    s_pilot, u_pilot = d.shape
    s_plan = n_seeds or s_pilot
    if s_pilot == 1:  # one seed cannot separate the parts: treat it all as between units (conservative)
        var_units, var_seeds, var_noise = float(d.var(ddof=1)), 0.0, 0.0
    else:
        within = float(d.var(axis=0, ddof=1).mean())  # var over seeds on one unit: seeds + noise
        # var of a seed's mean over the units = var_seeds + var_noise / u_pilot
        var_seeds = max(0.0, (float(d.mean(axis=1).var(ddof=1)) - within / u_pilot) / (1 - 1 / u_pilot))
        var_noise = max(0.0, within - var_seeds)
        # var of a unit's mean over the seeds = var_units + within / s_pilot
        var_units = max(0.0, float(d.mean(axis=0).var(ddof=1)) - within / s_pilot)
    se = float(np.sqrt(var_units / n_units + var_seeds / s_plan + var_noise / (n_units * s_plan)))
    z = float(_st.norm.ppf(0.5 + level / 2))
    return {"se": se, "half_width": z * se, "mde": (z + float(_st.norm.ppf(power))) * se,
            "sd_units": float(np.sqrt(var_units)), "sd_seeds": float(np.sqrt(var_seeds)),
            "sd_noise": float(np.sqrt(var_noise)), "sd_within": float(np.sqrt(var_seeds + var_noise)),
            "n_units": n_units, "n_seeds": s_plan, "pilot_shape": list(d.shape)}
