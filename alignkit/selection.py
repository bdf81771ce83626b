"""Data selection for RL: which training prompts to keep.

Chapter 1 (BLEUBERI) selects hard instructions; chapter 2 (LIMR) selects samples whose reward
trajectory follows the model's average learning curve (LIM), with the LINEAR and random baselines.
Each section below is headed with its chapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignkit.rewards import _check_texts, text_reward


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    """An int (not a bool) in ``[low, high]``, else a TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r:.80}")
    if value < low or (high is not None and value > high):
        accepted = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {accepted}, got {value!r}")
    return int(value)


def _as_float_array(name: str, value, *, allow_nan: bool = False) -> np.ndarray:
    """``value`` as a float array (a copy), refusing non-numbers, inf and (unless allowed) NaN."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}: {value!r:.80}")
    try:
        a = np.array(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {value!r:.80} ({err})") from None
    if np.any(np.isinf(a)) or (not allow_nan and np.any(np.isnan(a))):
        bad = a[~np.isfinite(a)] if not allow_nan else a[np.isinf(a)]
        what = "finite numbers" if not allow_nan else "finite numbers or NaN"
        raise ValueError(f"{name} must hold {what}, got {bad[:5].tolist()}")
    return a

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
    if acc is None or isinstance(acc, (str, bytes, dict)):
        raise TypeError(f"acc must be a (samples, epochs) array of accuracies, got {type(acc).__name__}")
    try:
        a = np.array(acc, dtype=float)  # a copy: the fill below must not touch the caller's array
    except (TypeError, ValueError) as err:
        raise TypeError(f"acc must be a (samples, epochs) array of accuracies, got {acc!r:.80} ({err})") from None
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
    ref = _as_float_array("reference", reference(a[valid]) if callable(reference) else reference)
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
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold must be a number in [0, 1], got {type(threshold).__name__}: {threshold!r:.80}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    s = _as_float_array("scores", scores, allow_nan=True)
    if s.ndim != 1:
        raise ValueError(f"scores must be one score per sample (1-D), got shape {s.shape}")
    return np.flatnonzero(~np.isnan(s) & (s >= threshold))


def random_subset(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct indices out of ``range(n)``, sorted, drawn with ``seed`` (the RAND baseline,
    usually with ``k = len(lim_select(...))`` so the subsets have equal size).
    """
    n = _check_int("n", n, 0)
    k = _check_int("k", k, 0, n)
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


# --------------------------------------------------------------------------------------------
# Chapter 1 (BLEUBERI): hard-instruction selection
#
# The released code (training/create_training_data.py, mode "hard") samples one answer per
# pool prompt from the *base* model (temperature 0.7, top_p 0.9, seed 42), scores it with BLEU
# against the references and keeps the k lowest. "easy", "medium" and "random" are its
# ablations. Ties are broken by pool index, so the selection is deterministic.
# --------------------------------------------------------------------------------------------

SELECTION_MODES = ("hard", "easy", "medium", "random")


def _check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in SELECTION_MODES:
        raise ValueError(f"unknown mode {mode!r}; accepted: {', '.join(SELECTION_MODES)}")
    return mode


@dataclass
class Selection:
    """The outcome of a selection over a pool of prompts.

    Attributes:
        indices: pool indices of the kept prompts, in the order chosen (for ``hard``, lowest
            score first).
        scores: the score of *every* pool prompt (draw the histogram from these).
        mode: ``hard``, ``easy``, ``medium`` or ``random``.
        metric: the text metric that produced the scores (``bleu`` in the paper).
    """

    indices: list[int]
    scores: list[float]
    mode: str
    metric: str

    @property
    def selected_scores(self) -> list[float]:
        """The scores of the kept prompts, in the order of ``indices``."""
        return [self.scores[i] for i in self.indices]

    @property
    def threshold(self) -> float:
        """The highest score among the kept prompts (for ``hard``, the cut-off)."""
        return max(self.selected_scores)


def score_outputs(outputs: list[str], references: list[list[str]], metric: str = "bleu") -> list[float]:
    """Score each base-model output against its references as the released selection step does
    (``create_training_data.py``): the whole stripped output, no ``<answer>`` extraction; an
    empty output scores 0."""
    outputs, references = _check_texts("outputs", outputs), _check_texts("references", references)
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs but {len(references)} reference lists; pass one per prompt")
    return [text_reward(o, r, metric, answer_only=False) for o, r in zip(outputs, references, strict=True)]


def select_by_score(scores: list[float], k: int, mode: str = "hard", *, seed: int = 42,
                    metric: str = "bleu") -> Selection:
    """Keep ``k`` prompts by their scores: the lowest (``hard``), highest (``easy``), the middle
    of the sorted pool (``medium``) or a seeded random subset (``random``).

    ``scores`` must be finite numbers: NaN has no place in the order (a NaN would sort as if
    it were the smallest and be kept first), so it is refused; score missing outputs 0 instead.
    """
    _check_mode(mode)
    arr = _as_float_array("scores", scores)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"scores must be a non-empty list of numbers (one per prompt), got shape {arr.shape}")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int between 1 and the pool size {len(scores)}, got {type(k).__name__}: {k!r}")
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be between 1 and the pool size {len(scores)}, got {k}")
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string (the name of the scoring metric), got {type(metric).__name__}")
    ascending = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    if mode == "hard":
        chosen = ascending[:k]
    elif mode == "easy":
        chosen = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    elif mode == "medium":
        start = (len(scores) - k) // 2
        chosen = ascending[start:start + k]
    else:
        chosen = [int(i) for i in random_subset(len(scores), k, seed)]
    return Selection(indices=chosen, scores=list(scores), mode=mode, metric=metric)


def select_hard(outputs: list[str], references: list[list[str]], k: int, *, mode: str = "hard",
                metric: str = "bleu", seed: int = 42) -> Selection:
    """BLEUBERI's selection from precomputed base-model ``outputs`` (one per prompt).

    Scores every output with ``metric`` against its references and keeps ``k`` prompts by
    ``mode`` (``hard`` = the k lowest, the paper's default). A pure function: chapter 1 calls it
    on outputs from :func:`generate_base_outputs`, the tests on hand-made ones.
    """
    return select_by_score(score_outputs(outputs, references, metric), k, mode, seed=seed,
                           metric=metric)


def _check_prompts(prompts) -> list[str]:
    prompts = _check_texts("prompts", prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of non-empty strings, got {prompts!r:.120}")
    return prompts


def generate_base_outputs(model, tokenizer, prompts: list[str], *, max_new_tokens: int,
                          temperature: float = 0.7, top_p: float = 0.9, seed: int = 42,
                          batch_size: int = 16, progress: bool = True) -> list[str]:
    """One sampled answer per user message from the base model, with the paper's sampler
    (temperature 0.7, top_p 0.9, seed 42; the paper allows 512 new tokens)."""
    from alignkit.generation import sample_completions

    _check_prompts(prompts)
    _check_int("max_new_tokens", max_new_tokens, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    for name, value, low, high in (("temperature", temperature, 0.0, np.inf), ("top_p", top_p, 0.0, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r:.80}")
        if not low < value <= high or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number in ({low:g}, {high:g}], got {value!r}")
    out = sample_completions(model, tokenizer, prompts, n=1, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, batch_size=batch_size,
                             seed=seed, progress=progress)
    return [texts[0] for texts in out.texts]


def select_hard_with_model(model, tokenizer, prompts: list[str], references: list[list[str]],
                           k: int, *, max_new_tokens: int, mode: str = "hard", seed: int = 42,
                           **sampling) -> tuple[Selection, list[str]]:
    """Generate base outputs for ``prompts`` and select ``k`` of them (see :func:`select_hard`).

    Returns the selection and the outputs, so a notebook can show the hardest examples.
    The arguments are checked before anything is generated.
    """
    prompts, references = _check_prompts(prompts), _check_texts("references", references)
    if len(prompts) != len(references):
        raise ValueError(f"{len(prompts)} prompts but {len(references)} references (reference lists); "
                         "pass one per prompt")
    _check_mode(mode)
    _check_int("k", k, 1, len(prompts))
    outputs = generate_base_outputs(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                    seed=seed, **sampling)
    return select_hard(outputs, references, k, mode=mode, seed=seed), outputs
