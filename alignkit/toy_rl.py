"""Training loops on the enumerable toy LMs: exact gradient ascent, REINFORCE (with KL) and DPG.

Each loop reads top to bottom like a CleanRL script and records exact metrics (expected reward,
KL to the prior, KL to the posterior, entropy, both sides of the KL-RL identity) every
``record_every`` steps, computed by enumeration with :func:`metrics`. Chapter 3 introduces it.

* :func:`exact_ascent`: gradient ascent on the exact objective ``J = E_pi[r] - beta KL(pi||pi0)``
  (``beta = 0`` is plain RL): the deterministic gradient flow.
* :func:`reinforce`: the sampled score-function estimator with reward
  ``r' = r + beta (log pi0 - log pi)`` and a mean baseline: what RLHF actually runs.
* :func:`dpg`: distributional policy gradient (Khalifa et al. 2021, GDC): importance-weighted
  maximum likelihood on the posterior, i.e. minimising the *forward* KL(pi* || pi).
* :func:`fit_exact`: minimise an exact forward or reverse KL to a target (for restricted families).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from alignkit.theory.bayes import log_partition, posterior
from alignkit.theory.divergence import kl
from alignkit.toy import ToyPolicy, entropy

METRICS = ("step", "reward", "kl_prior", "kl_posterior", "entropy", "max_prob", "objective",
           "variational_form")


def metrics(pi: np.ndarray, pi0: np.ndarray, r: np.ndarray, beta: float) -> dict[str, float]:
    """Exact metrics of a policy ``pi`` (a probability vector) for chapter 3's plots.

    ``objective`` is ``J_KLRL`` (``J_RL`` when beta = 0) and ``variational_form`` is
    ``-beta KL(pi||pi*) + beta log Z``; the two must agree at every step. With ``beta = 0`` there is
    no posterior and the posterior columns are NaN.
    """
    reward = float(pi @ r)
    kl_prior = kl(pi, pi0)
    out = {"reward": reward, "kl_prior": kl_prior, "entropy": entropy(pi), "max_prob": float(pi.max()),
           "objective": reward - beta * kl_prior}
    if beta > 0:
        kl_post = kl(pi, posterior(pi0, r, beta))
        out["kl_posterior"] = kl_post
        out["variational_form"] = -beta * kl_post + beta * log_partition(pi0, r, beta)
    else:
        out["kl_posterior"] = out["variational_form"] = float("nan")
    return out


def _check(policy: ToyPolicy, pi0, r, beta: float, steps: int, lr: float) -> tuple:
    if beta < 0 or not np.isfinite(beta):
        raise ValueError(f"beta must be >= 0 (0 = plain RL), got {beta!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    pi0 = policy.space.check(pi0, "pi0")
    r = policy.space.check(r, "r")
    if beta > 0 and np.any(pi0 == 0):
        raise ValueError("pi0 must be > 0 on every sequence when beta > 0 (log pi0 appears in the reward)")
    return pi0, r


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous setting.

    The toy tensors have a few hundred entries; on a busy machine torch's thread pool makes
    each step several times slower than one thread does.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _optimizer(policy: ToyPolicy, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(policy.parameters(), lr=lr)
    if name == "adam":
        return torch.optim.Adam(policy.parameters(), lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


class _Recorder:
    """Collects :func:`metrics` rows and returns them as a dict of numpy arrays."""

    def __init__(self, pi0, r, beta, record_every: int):
        if record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {record_every!r}")
        self.pi0, self.r, self.beta, self.every = pi0, r, beta, record_every
        self.rows: list[dict] = []

    def __call__(self, step: int, steps: int, policy: ToyPolicy) -> None:
        if step % self.every == 0 or step == steps:
            self.rows.append({"step": step, **metrics(policy.probs(), self.pi0, self.r, self.beta)})

    def history(self) -> dict[str, np.ndarray]:
        return {k: np.array([row[k] for row in self.rows]) for k in METRICS}


@single_thread()
def exact_ascent(policy: ToyPolicy, pi0, r, beta: float, steps: int, lr: float, *,
                 optimizer: str = "sgd", record_every: int = 10) -> dict[str, np.ndarray]:
    """Gradient ascent on the exact ``J_KLRL`` (sum over all sequences); returns the history.

    The gradient flow of the objective with no sampling noise: with ``beta = 0`` and a binary
    reward it stops once ``E[r] ~ 1`` and need not collapse (checked numerically here; the
    paper's collapse is a property of the optimum, Korbak et al. 2022, abstract).
    """
    pi0, r = _check(policy, pi0, r, beta, steps, lr)
    r_t, log_pi0 = torch.tensor(r), torch.tensor(np.log(np.maximum(pi0, 1e-300)))
    opt = _optimizer(policy, optimizer, lr)
    record = _Recorder(pi0, r, beta, record_every)
    record(0, steps, policy)
    for step in range(1, steps + 1):
        log_pi = policy.log_probs()
        pi = log_pi.exp()
        objective = pi @ r_t - beta * (pi @ (log_pi - log_pi0)) if beta > 0 else pi @ r_t
        opt.zero_grad()
        (-objective).backward()
        opt.step()
        record(step, steps, policy)
    return record.history()


@single_thread()
def reinforce(policy: ToyPolicy, pi0, r, beta: float, steps: int, lr: float, *, batch_size: int = 8,
              seed: int = 0, optimizer: str = "sgd", record_every: int = 10) -> dict[str, np.ndarray]:
    """Sampled REINFORCE with a mean baseline on ``r' = r + beta (log pi0 - log pi)``.

    Each step draws ``batch_size`` sequences from the policy, scores them with the KL-regularised
    reward (plain reward when ``beta = 0``), subtracts the batch mean and follows
    ``mean((r' - baseline) * grad log pi(x))``. Returns the exact-metric history.
    """
    pi0, r = _check(policy, pi0, r, beta, steps, lr)
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 for a mean baseline, got {batch_size!r}")
    r_t, log_pi0 = torch.tensor(r), torch.tensor(np.log(np.maximum(pi0, 1e-300)))

    def weights(x, log_pi_x):  # centred KL-regularised reward, averaged over the batch
        reward = r_t[x] + beta * (log_pi0[x] - log_pi_x)
        return (reward - reward.mean()) / batch_size

    return _sampled_ascent(policy, pi0, r, beta, steps, lr, weights, batch_size=batch_size,
                           seed=seed, optimizer=optimizer, record_every=record_every)


@single_thread()
def dpg(policy: ToyPolicy, pi0, r, beta: float, steps: int, lr: float, *, batch_size: int = 8,
        seed: int = 0, optimizer: str = "sgd", record_every: int = 10) -> dict[str, np.ndarray]:
    """Distributional policy gradient towards ``pi* ∝ pi0 exp(r / beta)`` (forward KL).

    ``grad KL(pi* || pi) = -E_{pi*}[grad log pi]``. We cannot sample ``pi*``, so we sample the
    policy and reweight by ``w = pi0 exp(r/beta) / pi`` (self-normalised over the batch): on-policy
    DPG. The expectation is under the target, not the policy, so this is not an RL objective.
    The recorded ``objective`` is still ``J_KLRL``, for comparison.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0 for a posterior target, got {beta!r}")
    pi0, r = _check(policy, pi0, r, beta, steps, lr)
    log_target = torch.tensor(np.log(pi0) + r / beta)  # unnormalised log pi*

    def weights(x, log_pi_x):  # self-normalised importance weights towards pi*
        return torch.softmax(log_target[x] - log_pi_x, 0)

    return _sampled_ascent(policy, pi0, r, beta, steps, lr, weights, batch_size=batch_size,
                           seed=seed, optimizer=optimizer, record_every=record_every)


def _sampled_ascent(policy: ToyPolicy, pi0, r, beta: float, steps: int, lr: float, weights, *,
                    batch_size: int, seed: int, optimizer: str, record_every: int) -> dict[str, np.ndarray]:
    """The loop REINFORCE and DPG share: sample a batch from the policy, weight each sample's
    ``grad log pi(x)`` by ``weights(x, log pi(x))`` (no gradient through the weights), step."""
    gen = torch.Generator().manual_seed(seed)
    opt = _optimizer(policy, optimizer, lr)
    record = _Recorder(pi0, r, beta, record_every)
    record(0, steps, policy)
    for step in range(1, steps + 1):
        log_pi = policy.log_probs()
        x = torch.multinomial(log_pi.detach().exp(), batch_size, replacement=True, generator=gen)
        loss = -(weights(x, log_pi[x].detach()) * log_pi[x]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        record(step, steps, policy)
    return record.history()


@single_thread()
def fit_exact(policy: ToyPolicy, target, direction: str, steps: int = 2000, lr: float = 0.05) -> float:
    """Fit ``policy`` to ``target`` by minimising an exact KL with Adam; returns the final KL.

    ``direction="forward"`` minimises ``KL(target || pi)`` (maximum likelihood: mass-covering),
    ``"reverse"`` minimises ``KL(pi || target)`` (what KL-regularised RL does: mode-seeking).
    """
    target = policy.space.check(target, "target")
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    p = torch.tensor(target)
    log_p = torch.tensor(np.log(np.maximum(target, 1e-300)))
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        log_q = policy.log_probs()
        if direction == "forward":
            loss = -(p * log_q).sum()  # KL(p||q) up to the constant -H(p)
        else:
            loss = (log_q.exp() * (log_q - log_p)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    q = policy.probs()
    return kl(target, q) if direction == "forward" else kl(q, target)
