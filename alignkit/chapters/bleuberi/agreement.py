"""Chapter 1 (BLEUBERI), claim 1: how often does a metric prefer the response a judge preferred?

Offline there are no human labels, so :func:`verifier_pairs` builds response pairs whose winner
is decided by :mod:`alignkit.verifier` (which never reads the references), and :func:`agreement`
/ :func:`agreement_table` measure each metric against that label with paired, prompt-clustered
bootstrap intervals (:func:`alignkit.stats.paired_bootstrap`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from alignkit.rewards import bleu, bleu_rouge_f1, rouge_l, word_count
from alignkit.stats import bootstrap_diff, paired_bootstrap
from alignkit.verifier import verifier_score


def agreement(score_a, score_b, a_wins, *, tie_credit: float = 0.0) -> np.ndarray:
    """Per pair: 1 when the metric prefers the labelled winner, 0 when it prefers the loser, and
    ``tie_credit`` when it scores both the same.

    ``score_a``/``score_b`` are the metric's scores of the two responses, ``a_wins`` the label
    (True when response a is the preferred one). The released analysis (lilakk/BLEUBERI
    arena_analysis/) calls a tied metric's winner "tie", which never equals a human winner once
    human ties are dropped: a tie counts as a disagreement, ``tie_credit=0`` (the default).
    ``tie_credit=0.5`` scores it as a coin flip, right half the time.
    """
    a, b, w = (np.asarray(x, dtype=float) for x in (score_a, score_b, a_wins))
    if not a.shape == b.shape == w.shape or a.ndim != 1:
        raise ValueError(f"score_a, score_b and a_wins must be 1-D of equal length, got {a.shape}, {b.shape}, "
                         f"{w.shape}")
    if not np.isin(w, (0.0, 1.0)).all():
        raise ValueError("a_wins must hold booleans (True when response a is preferred)")
    if isinstance(tie_credit, bool) or not isinstance(tie_credit, (int, float)) or not 0 <= tie_credit <= 1:
        raise ValueError(f"tie_credit must be a number in [0, 1] (0: the released rule, 0.5: a coin flip), "
                         f"got {tie_credit!r}")
    sign = np.sign(a - b) * np.where(w == 1.0, 1.0, -1.0)
    return np.where(sign == 0, float(tie_credit), (sign + 1) / 2)


def zscore(values) -> np.ndarray:
    """``(x - mean) / std`` with the sample standard deviation (ddof 1, pandas' ``std``), as the
    released ``compute_bleu_plus_rm.py``; all zeros when the values are constant."""
    x = np.asarray(values, dtype=float)
    sd = x.std(ddof=1) if x.size > 1 else 0.0
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def combine_zscores(*score_lists) -> np.ndarray:
    """The average of the z-scores (:func:`zscore`) of each list of scores of the same responses."""
    if not score_lists:
        raise ValueError("combine_zscores needs at least one list of scores")
    return np.mean([zscore(s) for s in score_lists], axis=0)


def bleu_plus_rm(bleu_scores: tuple, rm_scores: tuple) -> tuple[np.ndarray, np.ndarray]:
    """BLEU+RM of both sides, as the released ``compute_bleu_plus_rm.py``: each of the four
    columns (BLEU of a, BLEU of b, RM of a, RM of b) z-scored on its own, then per side the
    average of its BLEU and RM z-scores."""
    (bleu_a, bleu_b), (rm_a, rm_b) = bleu_scores, rm_scores
    return combine_zscores(bleu_a, rm_a), combine_zscores(bleu_b, rm_b)


def verifier_pairs(rows: Sequence[dict], completions: Sequence[Sequence[str]], *,
                   max_pairs_per_prompt: int = 3) -> list[dict]:
    """Response pairs labelled by the verifier, the offline stand-in for Chatbot Arena votes.

    For each prompt (row with ``prompt``, ``references``, ``constraints``) and its sampled
    ``completions``, every two *distinct* completions whose verifier scores differ form a pair
    whose winner is the one satisfying more constraints (equal scores are dropped, as the paper
    drops ``tie (bothbad)``). At most ``max_pairs_per_prompt`` pairs per prompt, the ones with
    the largest score gap first, so that no prompt dominates. Response ``a`` is whichever came
    first in sampling order, so the winner sits on either side.
    """
    if len(rows) != len(completions):
        raise ValueError(f"{len(rows)} rows but {len(completions)} lists of completions")
    pairs = []
    for p, (row, texts) in enumerate(zip(rows, completions, strict=True)):
        uniq = list(dict.fromkeys(t for t in texts if t.strip()))
        scores = [verifier_score(t, row["constraints"]) for t in uniq]
        cand = [(abs(scores[i] - scores[j]), i, j) for i, j in itertools.combinations(range(len(uniq)), 2)
                if scores[i] != scores[j]]
        cand.sort(key=lambda c: (-c[0], c[1], c[2]))
        for _, i, j in cand[:max_pairs_per_prompt]:
            pairs.append({"prompt_index": p, "prompt": row["prompt"], "references": list(row["references"]),
                          "response_a": uniq[i], "response_b": uniq[j], "a_wins": scores[i] > scores[j],
                          "verifier_a": scores[i], "verifier_b": scores[j]})
    return pairs



def metric_scores(pairs: Sequence[dict], max_refs: int = 4, rm_scorer: Callable | None = None) -> dict:
    """Each metric's scores of both responses of every pair: ``{name: (scores_a, scores_b)}``.

    Metrics (the paper's table, offline): ``BLEU k ref`` for k = 1..max_refs (the first k
    references, cumulative as in the paper), ``ROUGE-L`` and ``BLEU-ROUGE-L`` with one reference
    (the paper's non-BLEU metrics use one), ``Longer wins`` (word count), and with ``rm_scorer``
    (``f(prompts, responses) -> scores``) ``RM`` and ``BLEU+RM`` (:func:`bleu_plus_rm` of the RM
    and BLEU with all references).
    """
    if not pairs:
        raise ValueError("pairs is empty; nothing to score")
    out = {}
    for k in range(1, max_refs + 1):
        out[f"BLEU {k} ref"] = tuple(np.array([bleu(p[side], p["references"][:k]) for p in pairs])
                                     for side in ("response_a", "response_b"))
    for name, fn in (("ROUGE-L", rouge_l), ("BLEU-ROUGE-L", bleu_rouge_f1)):
        out[name] = tuple(np.array([fn(p[side], p["references"][:1]) for p in pairs])
                          for side in ("response_a", "response_b"))
    out["Longer wins"] = tuple(np.array([word_count(p[side]) for p in pairs], dtype=float)
                               for side in ("response_a", "response_b"))
    if rm_scorer is not None:
        prompts = [p["prompt"] for p in pairs]
        ra = np.asarray(rm_scorer(prompts, [p["response_a"] for p in pairs]), dtype=float)
        rb = np.asarray(rm_scorer(prompts, [p["response_b"] for p in pairs]), dtype=float)
        out["RM"] = (ra, rb)
        out["BLEU+RM"] = bleu_plus_rm(out[f"BLEU {max_refs} ref"], (ra, rb))
    return out



def agreement_table(pairs: Sequence[dict], scores: dict, *, n_boot: int = 2000, seed: int = 0,
                    tie_credit: float = 0.0) -> tuple[list[dict], dict[str, list[float]]]:
    """One row per metric: agreement with the verifier label in %, and its 95% cluster-bootstrap
    interval (pairs resampled by prompt), sorted like the paper's table (best first); and the paired
    differences (points, with intervals) between the metrics the claims compare.

    A tied metric counts as a disagreement, as in the released analysis (``tie_credit=0``); each
    row also gives ``ties`` (the share of pairs the metric tied, in %) and ``agreement_ties_half``
    (the agreement when a tie counts one half, a coin flip), so both readings are shown.
    """
    label = np.array([p["a_wins"] for p in pairs])
    correct = {name: agreement(a, b, label, tie_credit=tie_credit) for name, (a, b) in scores.items()}
    ties = {name: float(np.mean(np.asarray(a, float) == np.asarray(b, float))) for name, (a, b) in scores.items()}
    half = {name: float(agreement(a, b, label, tie_credit=0.5).mean()) for name, (a, b) in scores.items()}
    boot = paired_bootstrap(correct, n_boot=n_boot, seed=seed, clusters=[p["prompt_index"] for p in pairs])
    rows = [{"metric": name, "agreement": 100 * boot[name][0], "lo": 100 * boot[name][1],
             "hi": 100 * boot[name][2], "ties": 100 * ties[name], "agreement_ties_half": 100 * half[name],
             "n_pairs": len(pairs)} for name in correct]
    rows.sort(key=lambda r: -r["agreement"])
    diffs = {}
    for a, b in (("BLEU 4 ref", "BLEU 1 ref"), ("BLEU 1 ref", "Longer wins"), ("BLEU+RM", "RM"),
                 ("BLEU+RM", "BLEU 4 ref"), ("BLEU 4 ref", "RM"), ("BLEU 1 ref", "ROUGE-L")):
        if a in correct and b in correct:
            d = bootstrap_diff(boot, a, b)
            diffs[f"{a} - {b}"] = [100 * v for v in d]
    return rows, diffs
