"""A tiny transformer that adds two-digit numbers: chapter 2's toy track, trained in seconds on a CPU.

Every problem is written with fixed widths, ``"07+45="`` -> ``"052"``, over a 12-character
vocabulary, so prompts are 6 tokens, answers exactly 3 and no padding is needed. The model is
pretrained by supervised learning to a modest accuracy (:func:`pretrain`), then improved by the
from-scratch GRPO of ``alignkit.grpo`` with a 0/1 correctness reward (:func:`correct_reward`),
and judged by greedy accuracy on held-out problems (:func:`accuracy`).

Problems differ in difficulty by their number of carries (:func:`carries`: 0, 1 or 2). The start
policy is pretrained on a *skewed* mix (:func:`sft_mix`: every carry-free problem, only a few with
carries), like a base model that has seen easy problems far more often than hard ones. So during
RL on a uniform pool some problems are always solved, some never, and some are learned along the
way: the spread of difficulties that LIMR's trajectories need (with a uniform start policy every
problem learns alike and LIM keeps almost all of them).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

VOCAB = "0123456789+="
PROMPT_LEN, ANSWER_LEN = 6, 3  # "ab+cd=" and a zero-padded sum "sss"
STOI = {c: i for i, c in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """Token ids of ``text`` (characters of :data:`VOCAB` only)."""
    bad = sorted(set(text) - set(VOCAB))
    if bad:
        raise ValueError(f"characters {bad} are not in the toy vocabulary {VOCAB!r}")
    return [STOI[c] for c in text]


def decode(ids) -> str:
    """The text of a sequence of token ids."""
    return "".join(VOCAB[int(i)] for i in ids)


def problem_tokens(pairs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (N, 6) and answers (N, 3) for an (N, 2) array of operand pairs in 0..99."""
    pairs = np.asarray(pairs, dtype=int)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.min() < 0 or pairs.max() > 99:
        raise ValueError(f"pairs must be an (N, 2) array of ints in 0..99, got shape {pairs.shape}")
    prompts = [encode(f"{a:02d}+{b:02d}=") for a, b in pairs]
    answers = [encode(f"{a + b:03d}") for a, b in pairs]
    return torch.tensor(prompts), torch.tensor(answers)


def answers_of(prompts: torch.Tensor) -> torch.Tensor:
    """The correct answer tokens (N, 3) read back from prompt tokens (N, 6)."""
    a = prompts[:, 0] * 10 + prompts[:, 1]
    b = prompts[:, 3] * 10 + prompts[:, 4]
    s = a + b
    return torch.stack([s // 100, s // 10 % 10, s % 10], dim=1)


def split_problems(n_sft: int, n_pool: int, n_eval: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint random sets of operand pairs: supervised pretraining, the RL pool, held-out eval."""
    total = n_sft + n_pool + n_eval
    if min(n_sft, n_pool, n_eval) < 0 or total > 10_000:
        raise ValueError(f"need non-negative sizes summing to at most 10,000 pairs, got "
                         f"{n_sft}+{n_pool}+{n_eval}={total}")
    idx = np.random.default_rng(seed).permutation(10_000)[:total]
    pairs = np.stack([idx // 100, idx % 100], axis=1)
    return {"sft": pairs[:n_sft], "pool": pairs[n_sft:n_sft + n_pool], "eval": pairs[n_sft + n_pool:]}


def carries(pairs: np.ndarray) -> np.ndarray:
    """Number of carries (0, 1 or 2) in adding each operand pair: the toy's difficulty level."""
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    return ((a % 10 + b % 10) >= 10).astype(int) + ((a + b) >= 100).astype(int)


def sft_mix(pairs: np.ndarray, carry_fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """The pretraining set: every carry-free pair of ``pairs``, and each pair with a carry kept
    with probability ``carry_fraction``. A small fraction makes carries hard but learnable by RL."""
    if not 0.0 <= carry_fraction <= 1.0:
        raise ValueError(f"carry_fraction must be in [0, 1], got {carry_fraction!r}")
    pairs = np.asarray(pairs, dtype=int)
    keep = (carries(pairs) == 0) | (np.random.default_rng(seed).random(len(pairs)) < carry_fraction)
    return pairs[keep]


class TinyTransformer(nn.Module):
    """A 2-layer causal transformer over the toy vocabulary, with the two methods GRPO needs."""

    def __init__(self, d_model: int = 64, n_layers: int = 2, n_heads: int = 4):
        super().__init__()
        self.seq_len = PROMPT_LEN + ANSWER_LEN
        self.tok = nn.Embedding(len(VOCAB), d_model)
        self.pos = nn.Embedding(self.seq_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(VOCAB))
        mask = torch.triu(torch.full((self.seq_len, self.seq_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, L, V) for tokens (N, L)."""
        n = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(n, device=tokens.device))
        x = self.blocks(x, mask=self.causal[:n, :n], is_causal=True)
        return self.head(self.norm(x))

    def token_logprobs(self, prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        """log pi(completion token | everything before it), shape (N, 3)."""
        x = torch.cat([prompts, completions], dim=1)
        logits = self(x[:, :-1])[:, PROMPT_LEN - 1:]
        return torch.log_softmax(logits, dim=-1).gather(2, completions.unsqueeze(2)).squeeze(2)

    @torch.no_grad()
    def sample(self, prompts: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Answer tokens (N, 3), sampled at ``temperature`` (0 = greedy)."""
        x = prompts
        for _ in range(ANSWER_LEN):
            logits = self(x)[:, -1]
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1)
            x = torch.cat([x, nxt], dim=1)
        return x[:, PROMPT_LEN:]


def correct_reward(prompts: torch.Tensor, completions: torch.Tensor, sample_ids=None) -> torch.Tensor:
    """1.0 for an exactly right answer, 0.0 otherwise (the toy's verifier; ``alignkit.grpo`` format)."""
    return (completions == answers_of(prompts)).all(dim=1).float()


@torch.no_grad()
def correct(model: TinyTransformer, pairs: np.ndarray) -> np.ndarray:
    """Greedy exact match per operand pair (bool array): the per-problem outcomes that chapter 2
    pairs across methods for its intervals."""
    prompts, answers = problem_tokens(pairs)
    was_training = model.training
    model.eval()
    hits = (model.sample(prompts, temperature=0) == answers).all(dim=1).numpy()
    model.train(was_training)
    return hits


def accuracy(model: TinyTransformer, pairs: np.ndarray) -> float:
    """Greedy exact-match accuracy on operand pairs (the held-out metric)."""
    return float(correct(model, pairs).mean())


def pretrain(model: TinyTransformer, pairs: np.ndarray, *, steps: int = 300, batch_size: int = 64,
             lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Supervised learning on the answers of ``pairs`` (cross-entropy on answer tokens only).

    Deliberately short: the point is a policy with modest accuracy that RL can improve.
    Returns the loss per step.
    """
    prompts, answers = problem_tokens(pairs)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        rows = torch.randint(len(prompts), (batch_size,), generator=gen)
        x = torch.cat([prompts[rows], answers[rows]], dim=1)
        logits = model(x[:, :-1])[:, PROMPT_LEN - 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answers[rows].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def pretrained_model(pairs: np.ndarray, *, steps: int = 300, seed: int = 0, **model_kwargs) -> TinyTransformer:
    """A fresh :class:`TinyTransformer` (seeded) after :func:`pretrain` on ``pairs``."""
    torch.manual_seed(seed)
    model = TinyTransformer(**model_kwargs)
    pretrain(model, pairs, steps=steps, seed=seed)
    return model
