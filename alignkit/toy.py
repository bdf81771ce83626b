"""Tiny autoregressive language models whose whole sequence space can be enumerated exactly.

A vocabulary of ``V`` tokens and a fixed length ``T`` give ``V**T`` sequences (81 for V=3, T=4;
256 for V=4, T=4), few enough to list, so every expectation, KL divergence and entropy is an exact
sum instead of a Monte Carlo estimate. That is what lets chapter 3 check "KL-regularised RL
reaches the Bayesian posterior" to ten decimal places. Chapter 3 introduces this module.

Pieces:

* :class:`SequenceSpace`: the enumerated sequences, their prefixes, marginals and conditionals.
* :func:`random_bigram_lm`: a random prior ``pi0`` (a bigram LM), and two toy rewards.
* Policies (``torch.nn.Module``, float64, all exposing ``log_probs()`` over every sequence):
  :class:`SequenceSoftmax` (one logit per sequence), :class:`TabularAR` (a logit table per
  prefix, the tabular autoregressive LM), :class:`NeuralAR` (a small GRU language model) and
  :class:`ProductPolicy` (independent per-position categoricals, a deliberately restricted family).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

MAX_SEQUENCES = 4096
DTYPE = torch.float64  # exact checks to 1e-10 need double precision


def entropy(p) -> float:
    """Shannon entropy of a probability vector in nats (0 log 0 = 0)."""
    p = np.asarray(p, dtype=float)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


class SequenceSpace:
    """All sequences of ``length`` tokens over ``range(vocab_size)``, in lexicographic order.

    ``sequences[i]`` is sequence ``i``; every distribution in chapter 3 is a vector indexed the
    same way. ``prefix_ids[i, t]`` numbers the prefix ``sequences[i, :t]`` (the empty prefix is 0),
    which is the row of a :class:`TabularAR` logit table that predicts token ``t``.
    """

    def __init__(self, vocab_size: int, length: int):
        if not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be an int >= 1, got {length!r}")
        if vocab_size**length > MAX_SEQUENCES:
            raise ValueError(
                f"vocab_size**length = {vocab_size}**{length} = {vocab_size**length} sequences is too "
                f"many to enumerate; accepted: at most {MAX_SEQUENCES} (e.g. V=3, T=4 or V=4, T=4)"
            )
        self.vocab_size = vocab_size
        self.length = length
        grid = itertools.product(range(vocab_size), repeat=length)
        self.sequences = np.array(list(grid), dtype=np.int64)
        self.n = len(self.sequences)
        # prefix of length t -> offset(t) + its base-V number; offset(t) = V^0 + ... + V^(t-1)
        offsets = np.cumsum([0] + [vocab_size**t for t in range(length)])
        self.num_prefixes = int(offsets[-1])
        ids = np.zeros((self.n, length), dtype=np.int64)
        for t in range(length):
            number = np.zeros(self.n, dtype=np.int64)
            for i in range(t):
                number = number * vocab_size + self.sequences[:, i]
            ids[:, t] = offsets[t] + number
        self.prefix_ids = ids

    def __repr__(self) -> str:
        return f"SequenceSpace(vocab_size={self.vocab_size}, length={self.length}, n={self.n})"

    def index_of(self, seqs) -> np.ndarray:
        """Indices of the given sequences (rows of tokens) in the enumeration."""
        seqs = np.atleast_2d(np.asarray(seqs, dtype=np.int64))
        if seqs.shape[1] != self.length or seqs.min() < 0 or seqs.max() >= self.vocab_size:
            raise ValueError(f"sequences must be rows of {self.length} tokens in [0, {self.vocab_size})")
        powers = self.vocab_size ** np.arange(self.length - 1, -1, -1)
        return seqs @ powers

    def check(self, p, name: str = "p") -> np.ndarray:
        """``p`` as a float vector of length ``n`` (a distribution or a reward on this space)."""
        p = np.asarray(p, dtype=float)
        if p.shape != (self.n,):
            raise ValueError(f"{name} must have shape ({self.n},) for {self!r}, got {p.shape}")
        return p

    def marginals(self, p) -> np.ndarray:
        """Per-position token marginals ``[T, V]`` of a sequence distribution ``p``."""
        p = self.check(p)
        out = np.zeros((self.length, self.vocab_size))
        for t in range(self.length):
            np.add.at(out[t], self.sequences[:, t], p)
        return out

    def conditionals(self, p) -> np.ndarray:
        """Next-token probabilities ``[num_prefixes, V]`` of ``p`` (uniform after a zero-mass prefix).

        ``p(a | prefix) = p(prefix + a) / p(prefix)``: the tabular autoregressive LM that
        represents ``p`` exactly (any distribution on the space has one).
        """
        p = self.check(p)
        joint = np.zeros((self.num_prefixes, self.vocab_size))
        for t in range(self.length):
            np.add.at(joint, (self.prefix_ids[:, t], self.sequences[:, t]), p)
        total = joint.sum(1, keepdims=True)
        uniform = np.full_like(joint, 1.0 / self.vocab_size)
        return np.where(total > 0, joint / np.where(total > 0, total, 1.0), uniform)


def random_bigram_lm(space: SequenceSpace, seed: int = 0, concentration: float = 2.0,
                     rare_token: int | None = None, rare_factor: float = 1.0) -> np.ndarray:
    """A random bigram LM as a sequence distribution: the prior ``pi0`` of chapter 3's toys.

    The start distribution and each transition row are drawn from a symmetric
    Dirichlet(``concentration``) with ``numpy.random.default_rng(seed)``. ``rare_token`` (with
    ``rare_factor`` < 1) scales that token's probability down everywhere and renormalises, to make
    a "Paris" token that the prior seldom says.
    """
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration!r}")
    if rare_token is not None and not 0 <= rare_token < space.vocab_size:
        raise ValueError(f"rare_token must be in [0, {space.vocab_size}), got {rare_token!r}")
    if not rare_factor > 0:
        raise ValueError(f"rare_factor must be > 0, got {rare_factor!r}")
    rng = np.random.default_rng(seed)
    alpha = np.full(space.vocab_size, float(concentration))
    start = rng.dirichlet(alpha)
    trans = rng.dirichlet(alpha, size=space.vocab_size)
    if rare_token is not None:
        start[rare_token] *= rare_factor
        trans[:, rare_token] *= rare_factor
        start /= start.sum()
        trans /= trans.sum(1, keepdims=True)
    x = space.sequences
    logp = np.log(start[x[:, 0]])
    for t in range(1, space.length):
        logp += np.log(trans[x[:, t - 1], x[:, t]])
    p = np.exp(logp)
    return p / p.sum()


def count_reward(space: SequenceSpace, token: int = 0) -> np.ndarray:
    """``r(x)`` = how many positions of ``x`` equal ``token`` (unique argmax: all-``token``)."""
    return (space.sequences == token).sum(1).astype(float)


def contains_reward(space: SequenceSpace, token: int = 0) -> np.ndarray:
    """``r(x)`` = 1 if ``x`` contains ``token`` anywhere, else 0 (the "mentions Paris" reward)."""
    return (space.sequences == token).any(1).astype(float)


class ToyPolicy(nn.Module):
    """A policy over an enumerable space: subclasses define ``log_probs()`` for every sequence.

    Because the space is enumerable, sampling a sequence means drawing its index from the exact
    distribution, which has the same law as sampling token by token.
    """

    def __init__(self, space: SequenceSpace):
        super().__init__()
        self.space = space

    def log_probs(self) -> torch.Tensor:
        """``log pi(x)`` for all ``space.n`` sequences (differentiable, float64)."""
        raise NotImplementedError

    def probs(self) -> np.ndarray:
        """The exact sequence distribution as a numpy vector (no gradient)."""
        with torch.no_grad():
            return self.log_probs().exp().numpy()

    def entropy(self) -> float:
        """Exact entropy of the policy in nats."""
        return entropy(self.probs())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices of ``n`` sequences drawn i.i.d. from the policy."""
        with torch.no_grad():
            p = self.log_probs().exp()
        return torch.multinomial(p, n, replacement=True, generator=generator)


def _logits_from(p, floor: float = 1e-300) -> np.ndarray:
    """Log-probabilities with a floor, so a zero-probability entry stays finite."""
    return np.log(np.maximum(np.asarray(p, dtype=float), floor))


class SequenceSoftmax(ToyPolicy):
    """``pi(x) = softmax(theta)_x``: one free logit per sequence (chapter 3's Toy A policy, derived here)."""

    def __init__(self, space: SequenceSpace, init=None):
        super().__init__(space)
        logits = np.zeros(space.n) if init is None else _logits_from(space.check(init, "init"))
        self.theta = nn.Parameter(torch.tensor(logits, dtype=DTYPE))

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.theta, 0)


class TabularAR(ToyPolicy):
    """A tabular autoregressive LM: one row of ``V`` logits for every prefix.

    ``pi(x) = prod_t softmax(table[prefix(x, t)])[x_t]``. It can represent every distribution on
    the space (``init=p`` sets it exactly to ``p`` via :meth:`SequenceSpace.conditionals`).
    """

    def __init__(self, space: SequenceSpace, init=None):
        super().__init__(space)
        if init is None:
            table = np.zeros((space.num_prefixes, space.vocab_size))
        else:
            table = _logits_from(space.conditionals(space.check(init, "init")))
        self.table = nn.Parameter(torch.tensor(table, dtype=DTYPE))
        self.register_buffer("_prefix", torch.from_numpy(space.prefix_ids))
        self.register_buffer("_tokens", torch.from_numpy(space.sequences))

    def log_probs(self) -> torch.Tensor:
        logp = torch.log_softmax(self.table, 1)  # [num_prefixes, V]
        return logp[self._prefix, self._tokens].sum(1)


class NeuralAR(ToyPolicy):
    """A small neural LM: token embedding, a one-layer GRU and a linear head over the vocabulary.

    Reads a begin-of-sequence token then the prefix, and predicts the next token at each step.
    It starts near uniform (random init); fit it to ``pi0`` with ``alignkit.toy_rl.fit_exact``.
    """

    def __init__(self, space: SequenceSpace, hidden: int = 32, seed: int = 0):
        super().__init__(space)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden!r}")
        gen = torch.Generator().manual_seed(seed)
        V = space.vocab_size
        self.embed = nn.Embedding(V + 1, hidden, dtype=DTYPE)  # id V is begin-of-sequence
        self.gru = nn.GRU(hidden, hidden, batch_first=True, dtype=DTYPE)
        self.head = nn.Linear(hidden, V, dtype=DTYPE)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=gen, dtype=DTYPE) * 0.3)
        bos = torch.full((space.n, 1), V, dtype=torch.long)
        seqs = torch.from_numpy(space.sequences)
        self.register_buffer("_inputs", torch.cat([bos, seqs[:, :-1]], 1))
        self.register_buffer("_tokens", seqs)

    def log_probs(self) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(self._inputs))  # [N, T, H]
        logp = torch.log_softmax(self.head(hidden), -1)  # [N, T, V]
        return logp.gather(2, self._tokens.unsqueeze(2)).squeeze(2).sum(1)


class ProductPolicy(ToyPolicy):
    """Independent categoricals per position: ``pi(x) = prod_t q_t(x_t)``.

    A restricted family: it cannot express correlations between positions, which is what makes
    forward-KL and reverse-KL fits to the same target differ (mass-covering vs mode-seeking).
    ``init`` is a ``[T, V]`` table of marginals (e.g. ``space.marginals(p)``, the forward-KL fit).
    """

    def __init__(self, space: SequenceSpace, init=None):
        super().__init__(space)
        shape = (space.length, space.vocab_size)
        if init is None:
            logits = np.zeros(shape)
        else:
            init = np.asarray(init, dtype=float)
            if init.shape != shape:
                raise ValueError(f"init must be a [T, V] = {list(shape)} table of marginals, got {init.shape}")
            logits = _logits_from(init)
        self.logits = nn.Parameter(torch.tensor(logits, dtype=DTYPE))
        self.register_buffer("_tokens", torch.from_numpy(space.sequences))

    def log_probs(self) -> torch.Tensor:
        logq = torch.log_softmax(self.logits, 1)  # [T, V]
        positions = torch.arange(self.space.length)
        return logq[positions, self._tokens].sum(1)
