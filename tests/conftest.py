"""Test-wide settings: offline hub, smoke scale, and a shared converted-model cache."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ALIGNKIT_SCALE", "smoke")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="module")
def toy_a():
    """Chapter 3's Toy A: 3 tokens, length 4 (81 sequences), a random bigram prior, and the
    reward counting token 0. Shared by the toy and Bayesian-view tests."""
    from alignkit.toy import SequenceSpace, count_reward, random_bigram_lm

    space = SequenceSpace(3, 4)
    return space, random_bigram_lm(space, seed=0), count_reward(space, 0)
