"""Chapter 3's enumerable toy LMs and training loops, checked against exact enumeration."""

import numpy as np
import pytest
import torch

from alignkit.theory.bayes import posterior
from alignkit.theory.divergence import kl
from alignkit.toy import (
    NeuralAR,
    ProductPolicy,
    SequenceSoftmax,
    SequenceSpace,
    TabularAR,
    contains_reward,
    entropy,
    random_bigram_lm,
)
from alignkit.toy_rl import dpg, exact_ascent, fit_exact, reinforce


def test_space_enumerates_and_indexes():
    space = SequenceSpace(3, 4)
    assert space.n == 81 and len({tuple(s) for s in space.sequences}) == 81
    np.testing.assert_array_equal(space.index_of(space.sequences), np.arange(81))
    assert space.num_prefixes == 1 + 3 + 9 + 27


@pytest.mark.parametrize("vocab, length", [(1, 4), (3, 0), (4, 7)])
def test_space_rejects_bad_sizes(vocab, length):
    with pytest.raises(ValueError, match="vocab_size|length"):
        SequenceSpace(vocab, length)


def test_bigram_prior_matches_chain_rule():
    space = SequenceSpace(3, 3)
    p = random_bigram_lm(space, seed=1)
    assert p.sum() == pytest.approx(1.0) and np.all(p > 0)
    # the first token's marginal and the conditional of token 2 given token 1 are a bigram's:
    cond = space.conditionals(p)
    ids = space.prefix_ids
    for i, seq in enumerate(space.sequences):  # p(x3 | x1, x2) must not depend on x1
        same = (space.sequences[:, 1] == seq[1]) & (space.sequences[:, 2] == seq[2])
        np.testing.assert_allclose(cond[ids[same, 2], seq[2]], cond[ids[i, 2], seq[2]])


def test_rare_token_is_rarer():
    space = SequenceSpace(4, 4)
    base = random_bigram_lm(space, seed=0) @ contains_reward(space, 0)
    rare = random_bigram_lm(space, seed=0, rare_token=0, rare_factor=0.2) @ contains_reward(space, 0)
    assert rare < base


@pytest.mark.parametrize("cls", [SequenceSoftmax, TabularAR])
def test_expressive_policies_represent_the_prior_exactly(toy_a, cls):
    space, p0, _ = toy_a
    np.testing.assert_allclose(cls(space, p0).probs(), p0, atol=1e-12)


def test_product_policy_is_product_of_marginals(toy_a):
    space, p0, _ = toy_a
    marg = space.marginals(p0)
    q = ProductPolicy(space, marg).probs()
    expected = np.prod([marg[t, space.sequences[:, t]] for t in range(space.length)], axis=0)
    np.testing.assert_allclose(q, expected, atol=1e-12)


def test_neural_policy_is_a_distribution_and_can_fit_the_prior(toy_a):
    space, p0, _ = toy_a
    policy = NeuralAR(space, hidden=16, seed=0)
    assert policy.probs().sum() == pytest.approx(1.0)
    assert fit_exact(policy, p0, "forward", steps=300, lr=0.03) < 1e-2


def test_sampling_matches_exact_probabilities(toy_a):
    space, p0, _ = toy_a
    policy = TabularAR(space, p0)
    idx = policy.sample(40_000, torch.Generator().manual_seed(0)).numpy()
    freq = np.bincount(idx, minlength=space.n) / len(idx)
    assert 0.5 * np.abs(freq - p0).sum() < 0.03  # total variation


def test_entropy_of_uniform_and_point_mass():
    assert entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8))
    assert entropy([1.0, 0.0, 0.0]) == 0.0


def test_plain_rl_exact_ascent_collapses_on_the_argmax(toy_a):
    space, p0, r = toy_a
    h = exact_ascent(SequenceSoftmax(space, p0), p0, r, beta=0.0, steps=3000, lr=1.0, record_every=3000)
    assert h["entropy"][-1] < 0.05 and h["max_prob"][-1] > 0.99
    assert h["reward"][-1] > 3.98  # the all-"Paris" sequence scores 4


def test_exact_klrl_satisfies_identity_and_reaches_posterior(toy_a):
    space, p0, r = toy_a
    h = exact_ascent(TabularAR(space, p0), p0, r, beta=3.0, steps=400, lr=0.5, record_every=10)
    np.testing.assert_allclose(h["objective"], h["variational_form"], atol=1e-10)
    assert h["kl_posterior"][-1] < 1e-3
    assert np.all(np.diff(h["kl_posterior"]) <= 1e-12)  # gradient ascent on J never moves away


def test_reinforce_with_kl_converges_to_the_posterior(toy_a):
    space, p0, r = toy_a
    policy = SequenceSoftmax(space, p0)
    h = reinforce(policy, p0, r, beta=1.0, steps=1000, lr=0.5, batch_size=32, seed=0, record_every=1000)
    assert h["kl_posterior"][0] > 0.5
    assert kl(policy.probs(), posterior(p0, r, 1.0)) < 0.01


def test_sampled_plain_rl_collapses_for_a_fixed_seed():
    space = SequenceSpace(4, 4)
    p0 = random_bigram_lm(space, seed=0, rare_token=0, rare_factor=0.3)
    r = contains_reward(space, 0)
    h = reinforce(SequenceSoftmax(space, p0), p0, r, beta=0.0, steps=1500, lr=2.0, seed=0,
                  record_every=1500)
    assert entropy(p0) > 4.0
    assert h["entropy"][-1] < 0.1 and h["max_prob"][-1] > 0.98 and h["reward"][-1] > 0.99


def test_dpg_fits_forward_kl_and_klrl_reverse_kl_on_a_restricted_family(toy_a):
    space, p0, _ = toy_a
    x = space.sequences
    r2 = 2.0 * ((x[:, 0] == x[:, 1]) & (x[:, 2] == x[:, 3]))
    target = posterior(p0, r2, 1.0)
    forward = ProductPolicy(space, space.marginals(target)).probs()  # moment matching = exact fit
    reverse = ProductPolicy(space, space.marginals(p0))
    fit_exact(reverse, target, "reverse", steps=1500, lr=0.05)
    assert entropy(forward) > entropy(reverse.probs()) + 1.0  # mass-covering vs mode-seeking
    assert kl(target, forward) < kl(target, reverse.probs())
    assert kl(reverse.probs(), target) < kl(forward, target)
    sampled = ProductPolicy(space, space.marginals(p0))
    dpg(sampled, p0, r2, beta=1.0, steps=1500, lr=0.5, batch_size=32, seed=0, record_every=1500)
    assert kl(target, sampled.probs()) < kl(target, forward) + 0.15


def test_training_loops_reject_bad_arguments(toy_a):
    space, p0, r = toy_a
    with pytest.raises(ValueError, match="beta"):
        exact_ascent(SequenceSoftmax(space), p0, r, beta=-1.0, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        reinforce(SequenceSoftmax(space), p0, r, beta=1.0, steps=0, lr=0.1)
    with pytest.raises(ValueError, match="beta"):
        dpg(SequenceSoftmax(space), p0, r, beta=0.0, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        exact_ascent(SequenceSoftmax(space), p0[:10], r, beta=1.0, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="direction"):
        fit_exact(SequenceSoftmax(space), p0, "sideways")
