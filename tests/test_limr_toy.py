"""Chapter 2's toy pipeline is calibrated: LIM at the paper's threshold keeps a proper subset."""

import numpy as np

from alignkit.chapters.limr import toy as limr_toy
from alignkit.chapters.limr.config import TOY_SIZES
from alignkit.grpo import GRPOConfig
from alignkit.selection import lim_scores, lim_select
from alignkit.toy_arithmetic import carries, sft_mix


def test_sft_mix_keeps_all_easy_and_few_carry_problems():
    pairs = np.array([[a, b] for a in range(100) for b in range(100)])
    c = carries(pairs)
    assert c[(12 * 100) + 34] == 0 and c[(15 * 100) + 17] == 1 and c[(55 * 100) + 55] == 2
    mix = sft_mix(pairs, 0.05, seed=0)
    mc = carries(mix)
    assert (mc == 0).sum() == (c == 0).sum()  # every carry-free problem
    assert abs((mc > 0).sum() / (c > 0).sum() - 0.05) < 0.01


def test_calibrated_toy_keeps_a_proper_subset_at_smoke():
    """Before calibration LIM kept 127 of 128 problems; now some are always solved (score 0) and
    LIM at 0.6 keeps between 5% and 50% of the pool."""
    p = TOY_SIZES["smoke"]
    _, _, pool, acc = limr_toy.scoring_run(0, p, GRPOConfig(**limr_toy.GRPO_SETTINGS))
    scores = lim_scores(acc)
    kept = len(lim_select(scores, limr_toy.LIM_THRESHOLD))
    assert 0.05 * len(pool) <= kept <= 0.5 * len(pool), kept
    always = acc.mean(axis=1) == 1
    assert always.any() and np.all(scores[always] == 0)  # too easy: dropped with score exactly 0
