"""LIMR selection (chapter 2): LIM scores on hand-computed cases (derived here from the score of
Li et al. 2025, section 2, and the fill rule of GAIR-NLP/LIMR lim/lim_selection.py), missing epochs,
the >= threshold, LINEAR and random subsets."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alignkit.selection import (
    fill_missing_epochs,
    lim_scores,
    lim_select,
    linear_scores,
    random_subset,
)

N = np.nan
ABCD = [[0, .5, 1], [0, 0, .5], [.5, 1, 1], [1, 1, 1]]
WITH_MISSING = ABCD + [[0, 0, 0], [N, .5, 1], [.5, N, N], [0, .5, N], [N, N, 1]]


def test_hand_computed_scores_derived_here():
    # average (0.375, 0.625, 0.875), denominator 35/64
    np.testing.assert_allclose(lim_scores(ABCD), [24 / 35, -8 / 35, 24 / 35, 0.0], atol=1e-12)


def test_missing_epochs_fill_from_the_next_epoch_and_drop_the_rest():
    filled, valid = fill_missing_epochs(WITH_MISSING)
    np.testing.assert_array_equal(filled[5], [.5, .5, 1])  # F filled from epoch 2
    assert valid.tolist() == [True] * 6 + [False] * 3  # G, H, I dropped
    s = lim_scores(WITH_MISSING)
    # the average over A-F only is (1/3, 1/2, 3/4)
    np.testing.assert_allclose(s[:6], [0.770642, 0.440367, 0.550459, 0.0, -0.220183, 0.880734],
                               atol=1e-6)
    assert np.isnan(s[6:]).all()


def test_fill_is_one_pass_and_does_not_touch_the_input():
    acc = np.array([[N, N, 1.0], [1.0, 1.0, 1.0]])
    filled, valid = fill_missing_epochs(acc)
    assert np.isnan(filled[0, 0]) and filled[0, 1] == 1.0 and valid.tolist() == [False, True]
    assert np.isnan(acc[0, 1])  # the caller's array is unchanged


def test_always_correct_scores_exactly_zero():
    rng = np.random.default_rng(0)
    acc = rng.integers(0, 9, size=(50, 7)) / 8
    acc[3] = 1.0
    assert lim_scores(acc)[3] == 0.0


def test_always_wrong_matches_the_closed_form():
    acc = np.array(ABCD + [[0, 0, 0]], dtype=float)
    avg = acc.mean(axis=0)
    expected = 1 - np.sum(avg ** 2) / np.sum((1 - avg) ** 2)
    assert lim_scores(acc)[-1] == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 10_000))
def test_scores_match_a_direct_loop(n, k, seed):
    acc = np.random.default_rng(seed).random((n, k))
    avg = acc.mean(axis=0)
    if np.all(avg == 1):
        return
    direct = [1 - sum((acc[i, j] - avg[j]) ** 2 for j in range(k)) / sum((1 - avg[j]) ** 2 for j in range(k))
              for i in range(n)]
    np.testing.assert_allclose(lim_scores(acc), direct, atol=1e-9)
    assert np.all(lim_scores(acc) <= 1 + 1e-12)


def test_select_uses_greater_or_equal_and_skips_nan():
    assert lim_select([0.6, 0.59999, N, 1.0, -3.0]).tolist() == [0, 3]
    assert lim_select(lim_scores(WITH_MISSING), 0.6).tolist() == [0, 5]


def test_linear_reading_scores_the_line_as_one():
    acc = [[1 / 3, 2 / 3, 1], [1, 1, 1], [1, 1, N]]
    s = linear_scores(acc)
    assert s[0] == pytest.approx(1.0) and s[1] == 0.0 and np.isnan(s[2])


def test_random_subset_is_seeded_sorted_and_distinct():
    a, b = random_subset(100, 17, seed=3), random_subset(100, 17, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 17 and a.tolist() == sorted(a.tolist())
    assert random_subset(100, 17, seed=4).tolist() != a.tolist()


@pytest.mark.parametrize("bad, match", [
    ([[0.5, 1.5]], r"\[0, 1\]"), ([[-0.1, 0.2]], r"\[0, 1\]"), ([0.1, 0.2], "shape"),
    ([[N, N]], "no sample"), ([[np.inf, 0.2]], r"\[0, 1\]")])
def test_bad_acc_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        lim_scores(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        lim_select([0.5], threshold=1.5)
    with pytest.raises(ValueError, match="k must be"):
        random_subset(5, 6)
    with pytest.raises(ValueError, match="2 epochs"):
        linear_scores([[0.5]])
