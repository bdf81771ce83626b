"""Reading chapter 2's toy results: outcomes per seed, paired differences, intervals over seeds.

The toy pipeline (:mod:`~alignkit.chapters.limr.toy`) saves, per seed, every method's 0/1
greedy answer to each held-out problem (``run["correct"][method]``), its held-out accuracy
(``run["acc"][method]``) and its learning curve (``run["curves"][method]``: ``[step, accuracy]``
pairs). A method is missing from a seed when its subset held fewer than 2 problems. The notebook
``02_limr.ipynb`` (chapter 2) and its ledger read the results through these functions only.
"""

from __future__ import annotations

import numpy as np

from alignkit.stats import mean_ci, seeds_units_bootstrap

DROPPED = -99  # the toy's JSON marks a problem dropped by the fill rule with this LIM score


def seed_ci(values, bounds=(0.0, 1.0)) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over seeds, clipped to ``bounds`` (``None`` entries are
    skipped; no value: NaNs). Descriptive: the paired bootstrap is the ledger's statistic."""
    values = [v for v in values if v is not None]
    m, lo, hi = mean_ci(values) if values else (np.nan, np.nan, np.nan)
    return m, float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))


def both(runs: list[dict], a: str, b: str) -> list[dict]:
    """The seeds (runs) in which both methods ``a`` and ``b`` trained."""
    return [r for r in runs if a in r["correct"] and b in r["correct"]]


def outcomes(runs: list[dict], method: str) -> np.ndarray:
    """The (seeds, held-out problems) 0/1 array of ``method``'s greedy answers in ``runs``."""
    missing = [r["seed"] for r in runs if method not in r["correct"]]
    if missing:
        raise ValueError(f"method {method!r} did not train in seeds {missing}; "
                         f"select the runs with both(runs, {method!r}, other) first")
    return np.array([r["correct"][method] for r in runs], dtype=float)


def paired_ci(runs: list[dict], a: str, b: str, n_boot: int = 2000) -> tuple[float, float, float]:
    """Held-out accuracy of ``a`` minus ``b``, paired by seed and problem, with the 95%
    seeds-x-problems bootstrap interval (``alignkit.stats.seeds_units_bootstrap``)."""
    rs = both(runs, a, b)
    return seeds_units_bootstrap(outcomes(rs, a), outcomes(rs, b), n_boot=n_boot)


def ahead(runs: list[dict], a: str, b: str) -> int:
    """In how many seeds ``a``'s held-out accuracy is strictly above ``b``'s."""
    return sum(r["acc"][a] > r["acc"][b] for r in both(runs, a, b))


def mean_curve(runs: list[dict], method: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, held-out accuracy averaged over the seeds where ``method`` trained)."""
    curves = [r["curves"][method] for r in runs if method in r["curves"]]
    if not curves:
        raise ValueError(f"no seed has a learning curve for {method!r}")
    steps = np.array([s for s, _ in curves[0]])
    return steps, np.array([[acc for _, acc in c] for c in curves]).mean(axis=0)


def scores_of(run: dict, key: str = "lim_scores") -> np.ndarray:
    """One seed's LIM (or LINEAR) scores as floats, NaN where the fill rule dropped a problem."""
    s = np.array(run[key], dtype=float)
    s[s == DROPPED] = np.nan
    return s


def example_problems(acc, scores) -> dict[str, int]:
    """Problems picked by rule for the paper's Figure 2 drawn on the toy (row indices of ``acc``):
    the highest LIM score; one learned during RL (the largest rise from <= 0.25 in the first
    epoch to >= 0.75 in the last, else the largest rise); the first always-solved and the first
    never-solved problem, when there are any."""
    a = np.asarray(acc, dtype=float)
    rise = a[:, -1] - a[:, 0]
    learned = (a[:, 0] <= 0.25) & (a[:, -1] >= 0.75)
    out = {"highest LIM score": int(np.nanargmax(scores)),
           "learned during RL": int(np.argmax(np.where(learned, rise, -np.inf)) if learned.any()
                                    else np.nanargmax(rise))}
    for name, value in (("always solved", 1.0), ("never solved", 0.0)):
        rows = np.flatnonzero((a == value).all(axis=1))
        if rows.size:
            out[name] = int(rows[0])
    return out
