"""Chapter 5: preference collapse against its closed form (derived here); seeded simulations."""

import numpy as np
import pytest
from scipy.special import expit, logit

from alignkit.chapters.trilemma import simulation as sim
from alignkit.chapters.trilemma.style_pairs import (
    population_casual_rate,
    style_pairs,
    two_group_preferences,
)
from alignkit.theory import preferences as prefs

W, R = (0.7, 0.3), (0.9, 0.1)


def test_collapse_matches_values_derived_by_hand():
    mass = prefs.collapse_curve(W, R, [10, 1, 0.3, 0.1, 0.03])
    expected = [0.4834, 0.3400, 0.0988, 0.00131, 2.5e-10]
    np.testing.assert_allclose(mass, expected, rtol=5e-3)  # the hand-derived values are rounded to 3-4 digits
    assert prefs.pooled_rate(W, R) == pytest.approx(0.66)
    assert prefs.bt_reward_gap(0.66) == pytest.approx(0.6633, abs=1e-4)
    assert mass[1] == pytest.approx(1 - 0.66, abs=1e-12)  # beta = 1: exactly the pooled rate
    assert np.all(np.diff(prefs.collapse_curve(W, R, np.geomspace(100, 0.01, 30))) < 0)


def test_collapse_closed_form_for_any_population():
    for w, r, beta in [((0.5, 0.5), (0.8, 0.3), 0.4), ((0.2, 0.8), (0.6, 0.1), 2.0)]:
        gap = logit(prefs.pooled_rate(w, r))
        assert prefs.collapse_curve(w, r, [beta])[0] == pytest.approx(1 / (1 + np.exp(gap / beta)))


def test_bradley_terry_fit_recovers_logit_and_true_scores():
    rng = np.random.default_rng(0)
    # two items: MLE gap is the logit of the win fraction, whatever the group structure
    wins = rng.random(5000) < 0.66
    r = prefs.fit_bradley_terry(np.where(wins, 0, 1), np.where(wins, 1, 0), 2)
    assert r[0] - r[1] == pytest.approx(logit(wins.mean()), abs=1e-5)
    # four items with known scores, random pairs
    true = np.array([1.0, 0.0, -0.5, 0.5])
    i, j = rng.integers(0, 4, 40_000), rng.integers(0, 4, 40_000)
    keep = i != j
    i, j = i[keep], j[keep]
    i_wins = rng.random(i.size) < expit(true[i] - true[j])
    fit = prefs.fit_bradley_terry(np.where(i_wins, i, j), np.where(i_wins, j, i), 4)
    np.testing.assert_allclose(fit, true - true.mean(), atol=0.05)


def test_kl_policy_is_the_tilt():
    p = prefs.kl_policy([1.0, 0.0, -1.0], beta=0.5)
    q = np.exp(np.array([1.0, 0.0, -1.0]) / 0.5)
    np.testing.assert_allclose(p, q / q.sum())
    with pytest.raises(ValueError, match="beta must be > 0"):
        prefs.kl_policy([1.0, 0.0], beta=0)


def test_aggregators():
    x = np.r_[np.zeros(10), np.ones(90)]
    assert prefs.trimmed_mean(x, 0.1) == pytest.approx(1.0)
    assert prefs.median_of_means(x, 5, np.random.default_rng(0)) == pytest.approx(0.9, abs=0.11)
    assert prefs.group_median([0, 0, 1, 1, 1], [0, 0, 1, 1, 2]) == 1.0
    with pytest.raises(ValueError, match="trim must be in"):
        prefs.trimmed_mean(x, 0.5)
    with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
        prefs.pooled_rate((0.5, 0.6), (0.1, 0.2))


def test_homogeneous_pool_floors_at_the_bias():
    floor = sim.pool_bias(W, R, "homogeneous")
    assert floor == pytest.approx(0.24)
    err = sim.simulate_representativeness(W, R, [100, 10_000], "homogeneous", repeats=400, seed=0)
    assert err[-1] == pytest.approx(floor, abs=3 * np.sqrt(0.09 / 10_000) + 1e-3)
    diverse = sim.simulate_representativeness(W, R, [100, 10_000], "diverse", repeats=400, seed=0)
    # mean |error| of a binomial proportion ~ sqrt(2/pi) sqrt(p(1-p)/m)
    expected = np.sqrt(2 / np.pi) * np.sqrt(0.66 * 0.34 / np.array([100, 10_000]))
    np.testing.assert_allclose(diverse, expected, rtol=0.12)


def test_coverage_doubles_per_dimension():
    sizes = [sim.coverage_samples_needed(d, 0.1, repeats=200, seed=0) for d in range(1, 8)]
    slope = np.polyfit(range(1, 8), np.log2(sizes), 1)[0]
    assert 0.8 <= slope <= 1.2
    assert 15 <= sizes[0] <= 25  # 20 at d = 1 in an independent simulation (derived here)


def test_poisoning_trade_off():
    """Robust aggregation resists poisoning but also trims the genuine minority (the trilemma's robustness vs representativeness, arXiv 2511.19504 abstract)."""
    mean = sim.simulate_poisoning(0.1, aggregator="mean", seed=0)
    med = sim.simulate_poisoning(0.1, aggregator="median", seed=0)
    assert med["clean"] > mean["clean"] + 0.05  # representativeness error: robust is worse
    assert med["damage"] < mean["damage"] / 5  # poisoning damage: robust is better
    # mean's damage is alpha * (truth - adversary value), up to sampling noise
    assert mean["damage"] == pytest.approx(0.1 * 0.66, abs=0.01)


def test_seeded_simulations_are_deterministic():
    a = sim.tradeoff_frontier([0.0, 0.2], alpha=0.1, repeats=50, seed=3)
    b = sim.tradeoff_frontier([0.0, 0.2], alpha=0.1, repeats=50, seed=3)
    np.testing.assert_array_equal(a["clean"], b["clean"])
    assert sim.coverage_error(3, 40, seed=1) == sim.coverage_error(3, 40, seed=1)
    assert two_group_preferences(20, 0.3, seed=5) == two_group_preferences(20, 0.3, seed=5)


def test_synthetic_preferences_rates_and_split():
    rows = two_group_preferences(20_000, 0.3, seed=0)
    casual = np.mean([r["casual_chosen"] for r in rows])
    assert casual == pytest.approx(population_casual_rate(0.3), abs=0.01)
    assert population_casual_rate(0.3) == pytest.approx(0.34)  # = 1 - pooled rate of formal
    train_q = {p["prompt"] for p in style_pairs("train")}
    assert train_q.isdisjoint({p["prompt"] for p in style_pairs("test")})
    ctx = two_group_preferences(4, 0.5, group_context=True, seed=0)
    assert all(r["prompt"].startswith("[annotator group:") for r in ctx)
    with pytest.raises(ValueError, match="minority_share must be in"):
        two_group_preferences(4, 1.5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="pool must be one of"):
        sim.simulate_representativeness(W, R, [10], "mixed")
    with pytest.raises(ValueError, match="aggregator must be one of"):
        sim.simulate_poisoning(0.1, aggregator="mode")
    with pytest.raises(ValueError, match="alpha"):
        sim.simulate_poisoning(1.2)


def test_pareto_front_keeps_only_undominated_points_in_order():
    # (1, 5) and (4, 1) are undominated; (2, 6) is beaten by (1, 5), (5, 2) by (4, 1); (3, 3) stays
    x, y = [2, 1, 5, 3, 4], [6, 5, 2, 3, 1]
    front = sim.pareto_front(x, y)
    assert front.tolist() == [1, 3, 4]
    assert np.all(np.diff(np.asarray(x)[front]) > 0) and np.all(np.diff(np.asarray(y)[front]) < 0)
    assert sim.pareto_front([1.0, 1.0], [2.0, 2.0]).tolist() == [0]  # a tie keeps the first
    with pytest.raises(ValueError, match="non-empty 1-d arrays of one shape"):
        sim.pareto_front([1, 2], [1])


def test_frontier_damage_and_its_fold_are_real():
    """Chapter 5's frontier figure: the path over trims folds back, the front does not.

    Against adversaries at 0, a 20% trimmed mean is moved *more* than the plain mean (the minority
    it used to cut is pushed back into the kept window), and the near-median hardly at all.
    """
    trims = [0.0, 0.2, 0.35, 0.45]
    f = sim.tradeoff_frontier(trims, alpha=0.1, annotators=300, weights=W, rates=R, repeats=100)
    mean = sim.simulate_poisoning(0.1, aggregator="mean", annotators=300, weights=W, rates=R,
                                  repeats=100)
    assert f["damage"][0] == pytest.approx(mean["damage"])  # trim 0 is the plain mean
    assert f["damage"][1] > f["damage"][0] + 0.02 > f["damage"][3] + 0.02
    assert f["clean"][2] > f["clean"][3] + 0.01  # the fold: clean error falls again near 0.5
    assert sim.pareto_front(f["clean"], f["damage"]).tolist() == [0, 3]  # mean and near-median
