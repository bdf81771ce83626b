"""Chapter 3's package helpers: the posterior explorer's figure and the equal-reward comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from alignkit.chapters.kl_as_bayes import at_equal_reward, posterior_bars  # noqa: E402
from alignkit.theory.bayes import posterior  # noqa: E402
from alignkit.toy import SequenceSpace, count_reward, random_bigram_lm  # noqa: E402


def run(reward, metric):
    return pd.DataFrame({"reward": reward, "metric": metric})


def test_equal_reward_reads_each_line_at_the_common_midpoint():
    # run a: metric = 2 r; run b: metric = 1 + r; common reward range [0.2, 0.6], middle 0.4
    ra, rb = np.linspace(0.0, 0.6, 7), np.linspace(0.2, 1.0, 9)
    est, (lo, hi), mid = at_equal_reward(run(ra, 2 * ra), run(rb, 1 + rb), "metric", n_boot=50)
    assert mid == pytest.approx(0.4)
    assert est == pytest.approx(2 * 0.4 - (1 + 0.4))  # -0.6: not the difference of the last steps
    assert lo <= est <= hi


def test_equal_reward_interval_widens_with_noise():
    rng = np.random.default_rng(0)
    r = np.linspace(0, 1, 20)
    clean = at_equal_reward(run(r, r), run(r, r), "metric", n_boot=200)
    noisy = at_equal_reward(run(r, r + rng.normal(0, 0.3, 20)), run(r, r), "metric", n_boot=200)
    assert clean[1][1] - clean[1][0] < 1e-9 < noisy[1][1] - noisy[1][0]


def test_equal_reward_gives_none_without_a_common_range_or_a_varying_reward():
    assert at_equal_reward(run([0.0, 0.2], [1, 2]), run([0.5, 0.9], [1, 2]), "metric") is None
    assert at_equal_reward(run([0.5, 0.5], [1, 2]), run([0.0, 1.0], [1, 2]), "metric") is None


def test_equal_reward_clips_distinct2_to_one_and_names_missing_columns():
    a = pd.DataFrame({"reward": [0.0, 1.0], "distinct_2": [0.0, 5.0]})  # the line reads 2.5 at 0.5
    b = pd.DataFrame({"reward": [0.0, 1.0], "distinct_2": [0.0, 0.0]})
    assert at_equal_reward(a, b, "distinct_2", n_boot=5)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kl_ref"):
        at_equal_reward(a, b, "kl_ref")


def test_posterior_bars_shows_the_top_sequences_of_the_posterior():
    space = SequenceSpace(3, 4)
    pi0, r = random_bigram_lm(space, seed=0), count_reward(space, 0)
    fig = posterior_bars(space, pi0, r, beta=0.3, top=5)
    prior_bars, post_bars = fig.axes[0].containers
    heights = [b.get_height() for b in post_bars]
    np.testing.assert_allclose(heights, np.sort(posterior(pi0, r, 0.3))[::-1][:5])
    assert fig.axes[0].get_xticklabels()[0].get_text() == "PPPP"  # the argmax comes first
    plt.close(fig)
    with pytest.raises(ValueError, match="beta must be > 0"):
        posterior_bars(space, pi0, r, beta=0.0)
    with pytest.raises(ValueError, match="top must be"):
        posterior_bars(space, pi0, r, beta=1.0, top=0)
