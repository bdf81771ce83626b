"""Data selection for RL: which training prompts to keep.

Chapter 1 (BLEUBERI) selects hard instructions; chapter 2 (LIMR) selects samples whose reward
trajectory follows the model's average learning curve (LIM), with the LINEAR and random baselines.
Each section below is headed with its chapter.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# LIMR: Learning Impact Measurement (LIM), LINEAR and random subsets. Chapter 2 introduces them.
#
# Input everywhere: ``acc`` of shape (samples, epochs), the per-epoch accuracy r_i^k of each
# sample (fraction of its rollouts in epoch k with reward exactly +1), NaN where the sample was
# not seen in that epoch. Missing epochs follow the released code (GAIR-NLP/LIMR
# lim/lim_selection.py): one pass k = 1..K-1 copies r^{k+1} into a missing r^k; a sample still
# missing anywhere (missing in the last epoch, or in two consecutive epochs) is dropped and
# scores NaN; the average curve uses the surviving samples only.
# ---------------------------------------------------------------------------------------------


def _check_acc(acc) -> np.ndarray:
    """``acc`` as a float (samples, epochs) array; raises ValueError on a bad shape or value."""
    a = np.array(acc, dtype=float)  # a copy: the fill below must not touch the caller's array
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"acc must have shape (samples, epochs) with both >= 1, got shape {a.shape}")
    seen = a[~np.isnan(a)]
    if np.any((seen < 0) | (seen > 1)) or np.any(np.isinf(a)):
        bad = a[np.isinf(a) | (~np.isnan(a) & ((a < 0) | (a > 1)))]
        raise ValueError(f"acc holds accuracies in [0, 1] (NaN = epoch not seen), got {bad[:5].tolist()}")
    return a


def fill_missing_epochs(acc) -> tuple[np.ndarray, np.ndarray]:
    """The released code's missing-epoch rule: returns ``(filled acc, valid mask)``.

    One forward pass over k = 1..K-1: a missing r^k takes r^{k+1} when that is present (the
    code calls it a "forward fill"; it fills from the *next* epoch). Because the pass reads
    r^{k+1} before it is itself filled, a sample missing in two consecutive epochs keeps a gap;
    a sample missing in the last epoch has nothing to copy. Rows still holding NaN are invalid.
    """
    a = _check_acc(acc)
    for k in range(a.shape[1] - 1):
        gap = np.isnan(a[:, k]) & ~np.isnan(a[:, k + 1])
        a[gap, k] = a[gap, k + 1]
    return a, ~np.isnan(a).any(axis=1)


def alignment_scores(acc, reference) -> np.ndarray:
    """``s_i = 1 - sum_k (r_i^k - ref^k)^2 / sum_k (1 - ref^k)^2`` for each valid sample, NaN else.

    The shared core of LIM (``ref`` = the average curve) and our LINEAR reading (``ref`` = a
    straight line). ``reference`` is a length-K array or a function of the filled, valid rows
    returning one. An always-correct sample scores exactly 0 (its numerator is the denominator).
    """
    a, valid = fill_missing_epochs(acc)
    if not valid.any():
        raise ValueError("no sample has a complete accuracy curve after filling missing epochs "
                         "(every row is missing in the last epoch or in two consecutive epochs)")
    ref = np.asarray(reference(a[valid]) if callable(reference) else reference, dtype=float)
    if ref.shape != (a.shape[1],):
        raise ValueError(f"reference must have one value per epoch ({a.shape[1]}), got shape {ref.shape}")
    denom = np.sum((1.0 - ref) ** 2)
    scores = np.full(a.shape[0], np.nan)
    if denom == 0:  # the reference is always 1: every valid sample is always correct too
        scores[valid] = 0.0
        return scores
    scores[valid] = 1.0 - np.sum((a[valid] - ref) ** 2, axis=1) / denom
    return scores


def lim_scores(acc) -> np.ndarray:
    """LIM score of each sample (NaN for dropped ones): alignment with the average learning curve.

    ``r_avg^k = mean_i r_i^k`` over the valid samples, ``s_i = 1 - sum_k (r_i^k - r_avg^k)^2 /
    sum_k (1 - r_avg^k)^2`` (LIMR paper, Sec. 2). 1 means "learns exactly like the average";
    an always-correct sample scores exactly 0; an always-wrong one scores negative whenever the
    mean accuracy exceeds 1/2. So LIM drops both too-easy and too-hard samples.
    When every valid sample is always correct the denominator is 0 and all scores are 0.
    """
    return alignment_scores(acc, lambda valid_rows: valid_rows.mean(axis=0))


def linear_scores(acc) -> np.ndarray:
    """The LINEAR baseline, in our reading: LIM's score against a straight line ``ref^k = k/K``.

    The paper describes LINEAR only in words ("how consistently samples improve steadily across
    epochs", threshold 0.7) and gives no formula or code. We take the same alignment score as
    LIM with the average curve replaced by the line from 1/K (epoch 1) to 1 (epoch K), so a
    sample whose accuracy rises steadily to 1 scores near 1 and one that jumps early and
    plateaus scores lower. Same missing-epoch rules as :func:`lim_scores`; needs K >= 2.
    """
    a = _check_acc(acc)
    k = a.shape[1]
    if k < 2:
        raise ValueError(f"linear_scores needs at least 2 epochs to define a line, got {k}")
    return alignment_scores(a, np.arange(1, k + 1) / k)


def lim_select(scores, threshold: float = 0.6) -> np.ndarray:
    """Indices of the samples with ``score >= threshold`` (the released code's >=; the paper
    writes >). NaN scores (dropped samples) are never selected. The paper uses 0.6 for LIM
    (1,389 of 8,523 MATH problems) and 0.7 for LINEAR.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be one score per sample (1-D), got shape {s.shape}")
    return np.flatnonzero(~np.isnan(s) & (s >= threshold))


def random_subset(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct indices out of ``range(n)``, sorted, drawn with ``seed`` (the RAND baseline,
    usually with ``k = len(lim_select(...))`` so the subsets have equal size).
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an int in [0, n={n}], got {k!r}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))
